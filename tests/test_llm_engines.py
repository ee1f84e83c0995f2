"""LLM engines against a local HTTP server that speaks the OpenAI and Dify streaming (SSE) formats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime.engines.llm.base import LLMError, LLMErrorCode, history_window
from realtime.engines.llm.dify import DifyLLM
from realtime.engines.llm.echo import EchoLLM
from realtime.engines.llm.http import SSEEvent, iter_sse
from realtime.engines.llm.openai_compat import OpenAICompatibleLLM
from testkit.defaults import llm_settings
from testkit.outbound import policy_allowing

ANSWER = ["Hello", " there", "，你好", "! How can I help?"]
TIMEOUT_S = 0.4


def openai_event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n".encode()


def dify_event(event: str, **fields) -> bytes:
    payload = {"event": event, "conversation_id": "conv-42", "message_id": "m1", **fields}
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


class Protocol:
    """How one API frames an answer: its path, each delta, and the end of the answer."""

    def __init__(self, path: str, engine: type, delta, end: list[bytes], preamble: list[bytes]) -> None:
        self.path, self.engine, self.delta, self.end, self.preamble = path, engine, delta, end, preamble


PROTOCOLS = {
    "openai": Protocol(
        "/chat/completions",
        OpenAICompatibleLLM,
        lambda text: openai_event(text),
        end=[openai_event(finish="stop"), b"data: [DONE]\n\n"],
        preamble=[openai_event(""), b": keep-alive\n\n"],  # role-only first chunk, then a comment
    ),
    "dify": Protocol(
        "/chat-messages",
        DifyLLM,
        lambda text: dify_event("message", answer=text),
        end=[dify_event("message_end", metadata={})],
        preamble=[dify_event("workflow_started"), b"event: ping\n\n"],
    ),
}


class FakeLLMServer:
    """Serves ``/<scenario>/<api path>``; records every request so tests can check what the engine sent."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.disconnected = asyncio.Event()
        self.app = web.Application()
        for name, protocol in PROTOCOLS.items():
            self.app.router.add_post("/{scenario}" + protocol.path, self._handler(name))
        self.server = TestServer(self.app, host="127.0.0.1")

    def base_url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.server.port}/{scenario}"

    def _handler(self, protocol_name: str):
        protocol = PROTOCOLS[protocol_name]

        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests.append({"headers": dict(request.headers), "body": await request.json()})
            scenario = request.match_info["scenario"]
            if scenario == "unauthorized":
                return web.json_response({"error": {"message": "Incorrect API key provided"}}, status=401)
            if scenario == "server-error":
                return web.json_response({"code": "internal_error", "message": "model crashed"}, status=500)
            if scenario == "not-found":
                return web.Response(text="no such model", status=404)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            return await SCENARIOS[scenario](self, protocol, request, response)

        return handle

    async def normal(self, protocol, request, response):
        for part in [*protocol.preamble, *map(protocol.delta, ANSWER), *protocol.end]:
            await response.write(part)
        await response.write_eof()
        return response

    async def cut(self, protocol, request, response):
        await response.write(protocol.delta(ANSWER[0]))
        await asyncio.sleep(0.05)
        request.transport.close()  # the chunked body never ends: a dropped connection
        return response

    async def ends_early(self, protocol, request, response):
        await response.write(protocol.delta(ANSWER[0]))
        await response.write_eof()  # a clean close, but no end-of-answer event
        return response

    async def malformed(self, protocol, request, response):
        await response.write(protocol.delta(ANSWER[0]) + b'data: {"choices": [\n\n')
        await response.write_eof()
        return response

    async def slow_first_token(self, protocol, request, response):
        # Keep-alive comments keep the socket busy, so only a first-token deadline can catch this.
        for _ in range(int(3 * TIMEOUT_S / 0.05)):
            await response.write(b": thinking\n\n")
            await asyncio.sleep(0.05)
        return await self.normal(protocol, request, response)

    async def stall(self, protocol, request, response):
        await response.write(protocol.delta(ANSWER[0]))
        await asyncio.sleep(3 * TIMEOUT_S)
        return await self.normal(protocol, request, response)

    async def endless(self, protocol, request, response):
        try:
            for i in range(200):
                await response.write(protocol.delta(f"word{i} "))
                await asyncio.sleep(0.02)
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()  # aiohttp cancels a handler whose client went away, or the write fails
            raise
        return response

    async def stream_error(self, protocol, request, response):
        await response.write(protocol.delta(ANSWER[0]))
        if protocol is PROTOCOLS["dify"]:
            await response.write(dify_event("error", status=500, code="completion_request_error", message="quota"))
        else:
            await response.write(b'data: {"error": {"message": "quota", "code": 500}}\n\n')
        await response.write_eof()
        return response


SCENARIOS = {
    name.replace("_", "-"): getattr(FakeLLMServer, name)
    for name in ("normal", "cut", "ends_early", "malformed", "slow_first_token", "stall", "endless", "stream_error")
}


@pytest.fixture
async def llm_server() -> AsyncIterator[FakeLLMServer]:
    server = FakeLLMServer()
    await server.server.start_server()
    yield server
    await server.server.close()


def make_engine(protocol: str, base_url: str, **overrides):
    options = {"model": "qwen-turbo", "api_key": "sk-test", "timeout_s": TIMEOUT_S, "system_prompt": "Be brief."}
    options["outbound"] = policy_allowing(base_url)
    return PROTOCOLS[protocol].engine(llm_settings(base_url=base_url, **{**options, **overrides}))


async def collect(engine, messages=None) -> list[str]:
    return [delta async for delta in engine.stream(messages or [{"role": "user", "content": "Hi"}])]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_normal_stream_yields_the_answer_deltas(llm_server, protocol):
    engine = make_engine(protocol, llm_server.base_url("normal"))
    assert await collect(engine) == ANSWER
    assert llm_server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"
    await engine.aclose()


@pytest.mark.parametrize(
    ("protocol", "scenario", "code"),
    [
        (protocol, scenario, code)
        for protocol in PROTOCOLS
        for scenario, code in [
            ("unauthorized", LLMErrorCode.UNAUTHORIZED),
            ("server-error", LLMErrorCode.SERVER_ERROR),
            ("not-found", LLMErrorCode.REJECTED),
            ("cut", LLMErrorCode.BROKEN_STREAM),
            ("ends-early", LLMErrorCode.BROKEN_STREAM),
            ("malformed", LLMErrorCode.BROKEN_STREAM),
            ("stream-error", LLMErrorCode.SERVER_ERROR),
            ("slow-first-token", LLMErrorCode.TIMEOUT),
            ("stall", LLMErrorCode.TIMEOUT),
        ]
    ],
)
async def test_failures_map_to_one_error_type(llm_server, protocol, scenario, code):
    engine = make_engine(protocol, llm_server.base_url(scenario))
    received = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LLMError) as caught:
        async for delta in engine.stream([{"role": "user", "content": "Hi"}]):
            received.append(delta)
    assert caught.value.code == code, caught.value
    assert loop.time() - started < 5 * TIMEOUT_S  # a protocol deadline: the timeout fired (5x: slack)
    if scenario in {"cut", "ends-early", "stall", "stream-error"}:
        assert received == [ANSWER[0]]  # what came before the failure was delivered
    await engine.aclose()


async def test_error_messages_carry_the_servers_reason(llm_server):
    engine = make_engine("openai", llm_server.base_url("unauthorized"))
    with pytest.raises(LLMError, match="Incorrect API key provided"):
        await collect(engine)
    await engine.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_unreachable_server(protocol):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    engine = make_engine(protocol, f"http://127.0.0.1:{port}/v1")
    with pytest.raises(LLMError) as caught:
        await collect(engine)
    assert caught.value.code == LLMErrorCode.UNREACHABLE
    await engine.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_closing_the_stream_early_closes_the_connection(llm_server, protocol):
    engine = make_engine(protocol, llm_server.base_url("endless"))
    async with contextlib.aclosing(engine.stream([{"role": "user", "content": "Hi"}])) as deltas:
        async for _delta in deltas:
            break  # the consumer stops reading
    await asyncio.wait_for(llm_server.disconnected.wait(), timeout=2)
    await engine.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_cancelling_the_consumer_closes_the_connection(llm_server, protocol):
    engine = make_engine(protocol, llm_server.base_url("endless"))
    first_delta = asyncio.Event()

    async def consume():
        async for _delta in engine.stream([{"role": "user", "content": "Hi"}]):
            first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=2)
    task.cancel()  # barge-in: the answer task is cancelled mid-stream
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(llm_server.disconnected.wait(), timeout=2)
    await engine.aclose()


async def test_openai_request_carries_model_temperature_prompt_and_trimmed_history(llm_server):
    engine = make_engine("openai", llm_server.base_url("normal"), temperature=0.2, history_chars=30)
    conversation = [
        {"role": "user", "content": "An old question that is long"},
        {"role": "assistant", "content": "An old answer"},
        {"role": "user", "content": "What now?"},
    ]
    await collect(engine, conversation)
    body = llm_server.requests[0]["body"]
    assert body["model"] == "qwen-turbo"
    assert body["stream"] is True
    assert body["temperature"] == 0.2
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What now?"}]
    await engine.aclose()


async def test_dify_sends_only_the_new_query_and_keeps_the_conversation_id(llm_server):
    engine = make_engine("dify", llm_server.base_url("normal"), user="session-7")
    await collect(engine, [{"role": "user", "content": "First"}])
    await collect(engine, [{"role": "user", "content": "First"}, {"role": "user", "content": "Second"}])
    first, second = (request["body"] for request in llm_server.requests)
    assert first["conversation_id"] == ""
    assert first["response_mode"] == "streaming"
    assert first["user"] == "session-7"
    assert second["query"] == "Second"
    assert second["conversation_id"] == "conv-42"
    await engine.aclose()


async def test_echo_streams_the_last_user_message_in_pieces():
    engine = EchoLLM(llm_settings())
    conversation = [
        {"role": "user", "content": "ignored"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Say hello to 你好 now."},
    ]
    pieces = await collect(engine, conversation)
    assert "".join(pieces) == "Say hello to 你好 now."
    assert pieces == ["Say ", "hello ", "to ", "你", "好", " ", "now."]
    assert await collect(engine, [{"role": "system", "content": "x"}]) == []


def test_history_window_keeps_the_prompt_and_the_newest_turns_within_the_budget():
    turns = [
        {"role": "user", "content": "a" * 10},
        {"role": "assistant", "content": "b" * 10},
        {"role": "user", "content": "c" * 10},
        {"role": "assistant", "content": "d" * 10},
        {"role": "user", "content": "e" * 10},
    ]
    window = history_window(turns, system_prompt="S", budget_chars=35)
    assert window == [{"role": "system", "content": "S"}, turns[2], turns[3], turns[4]]
    # An assistant turn never opens the window, and the newest turn stays even over budget.
    assert history_window(turns, system_prompt="", budget_chars=20) == [turns[4]]
    assert history_window([{"role": "user", "content": "x" * 99}], system_prompt="", budget_chars=5) == [
        {"role": "user", "content": "x" * 99}
    ]


async def test_sse_parser_handles_fields_comments_multiline_data_and_a_missing_final_blank_line():
    async def lines():
        for line in [": hello", "event: message_end", "data: a", "data: b", "", "id: 3", "data: tail"]:
            yield line

    assert [event async for event in iter_sse(lines())] == [
        SSEEvent("message_end", "a\nb"),
        SSEEvent("message", "tail"),
    ]
