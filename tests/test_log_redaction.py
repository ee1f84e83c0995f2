"""Secrets in logs (issue 10, Low 12): URLs with credentials or key-like query values, RTMP stream keys and
``Api-Key`` credentials are hidden in every log line (one processor in ``settings.LOGGING``) and in the engine
errors that name a URL (``redact_url``)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings

from realtime.engines.llm.base import LLMError
from realtime.engines.llm.openai_compat import OpenAICompatibleLLM
from realtime.net.redact import redact_text, redact_url
from sessions_app.client_errors import report
from testkit.defaults import llm_settings
from testkit.outbound import policy_allowing

SECRET = "s3cr3tVALUE42"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://user:{SECRET}@llm.example.com/v1", "https://***@llm.example.com/v1"),
        (f"https://{SECRET}@github.com/x.git", "https://***@github.com/x.git"),
        (f"https://g.example.com/v1?key={SECRET}&alt=sse", "https://g.example.com/v1?key=***&alt=sse"),
        (f"http://h/x?api_key={SECRET}", "http://h/x?api_key=***"),
        (f"http://h/x?a=1&access_token={SECRET}#frag", "http://h/x?a=1&access_token=***#frag"),
        (f"http://h/x?sign={SECRET}&X-Amz-Signature={SECRET}", "http://h/x?sign=***&X-Amz-Signature=***"),
        (f"http://h/x?password={SECRET}&auth={SECRET}", "http://h/x?password=***&auth=***"),
        (f"http://h/x?client_secret={SECRET}&token={SECRET}", "http://h/x?client_secret=***&token=***"),
        (f"rtmp://live.example.com/app/{SECRET}", "rtmp://live.example.com/app/***"),
        (f"rtmps://u:{SECRET}@live.example.com:443/app/{SECRET}?x=1", "rtmps://***@live.example.com:443/app/***?x=1"),
        ("https://llm.example.com/v1/chat?page=2&model=qwen", "https://llm.example.com/v1/chat?page=2&model=qwen"),
    ],
)
def test_redact_url_hides_credentials_and_keeps_the_rest(url, shown):
    assert redact_url(url) == shown
    assert redact_text(f"failed on '{url}': boom") == f"failed on '{shown}': boom"


def test_redact_text_finds_relative_urls_and_api_key_credentials():
    assert redact_text(f"GET /ws/sessions/1/?api_key=abc.{SECRET} 101") == "GET /ws/sessions/1/?api_key=*** 101"
    assert redact_text(f"/ws/sessions/1/?ticket={SECRET}") == "/ws/sessions/1/?ticket=***"
    assert redact_text(f"Authorization: Api-Key AbCd1234.{SECRET}") == "Authorization: Api-Key ***"
    assert redact_text(f"header Bearer {SECRET}") == "header Bearer ***"
    assert redact_text("the token was refused for model qwen-turbo") == "the token was refused for model qwen-turbo"


@contextmanager
def log_output() -> Iterator[io.StringIO]:
    """What the root logger writes through the project's own log formatter (``settings.LOGGING``)."""
    configurator = logging.config.DictConfigurator(settings.LOGGING)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(configurator.configure_formatter(dict(settings.LOGGING["formatters"]["structured"])))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.stream
    finally:
        root.removeHandler(handler)


def test_every_log_line_is_redacted_by_the_logging_configuration():
    logger = logging.getLogger("livehuman.test")
    with log_output() as output:
        logger.warning("calling %s", f"https://user:{SECRET}@llm.example.com/v1?key={SECRET}")
        try:
            raise ValueError(f"rtmp://live.example.com/app/{SECRET} refused")
        except ValueError:
            logger.exception("stream failed")
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["calling https://***@llm.example.com/v1?key=***", "stream failed"]
    assert "rtmp://live.example.com/app/*** refused" in lines[1]["exception"]
    assert SECRET not in output.getvalue()


async def test_an_engine_error_with_a_keyed_url_reaches_no_log_in_clear():
    """The error names the URL it failed on (an operator needs it), redacted where it is made; logged with its
    traceback through the logging configuration, nothing shows the key either."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the block ends
    url = f"http://127.0.0.1:{port}/v1?key={SECRET}"
    engine = OpenAICompatibleLLM(
        llm_settings(
            base_url=url, model="m", api_key="sk-x", timeout_s=5, system_prompt="", outbound=policy_allowing(url)
        )
    )
    with log_output() as output:
        try:
            async for _ in engine.stream([{"role": "user", "content": "Hi"}]):
                pass
        except LLMError as exc:
            error = exc
            report("session-1", exc.code, str(exc))
            logging.getLogger("livehuman.engine_errors").exception("session session-1 failed")
    await engine.aclose()
    assert SECRET not in str(error) and "key=***" in str(error)
    logged = output.getvalue()
    assert "session-1" in logged and "key=***" in logged and SECRET not in logged
