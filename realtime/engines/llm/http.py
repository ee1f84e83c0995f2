"""What the HTTP engines share: a server-sent-events reader and the request/response/error handling around it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from realtime.engines.llm.base import LLMEngine, LLMError, LLMErrorCode, LLMSettings
from realtime.engines.server_errors import error_reason
from realtime.net.outbound import refusal_of
from realtime.net.redact import redact_url


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event`` field ("message" when the server names none) and its data."""

    event: str
    data: str


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Parse server-sent events from text lines (the SSE wire format: fields, comments, blank line ends an event).

    An event still open when the stream ends is dispatched too: some servers
    omit the blank line after their last event; a cut inside it fails later,
    when its data does not parse.
    """
    event, data = "", []
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment, used by servers as a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEEvent(event or "message", "\n".join(data))


def parse_json(data: str) -> dict:
    """Decode one event's JSON payload; anything else means the stream is not what the protocol promises."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        raise LLMError(LLMErrorCode.BROKEN_STREAM, f"malformed event data: {data[:120]!r}") from None
    if not isinstance(payload, dict):
        raise LLMError(LLMErrorCode.BROKEN_STREAM, f"unexpected event data: {data[:120]!r}")
    return payload


def error_for_status(status: int, reason: str) -> LLMError:
    """Map an HTTP status (of the response, or reported inside the stream) to an LLMError.

    ``reason`` is the server's own text: it goes into the error for the server log; what a client sees is
    chosen by ``code`` alone at the edge (the session's error message catalogue)."""
    if status in (401, 403):
        code = LLMErrorCode.UNAUTHORIZED
    elif status >= 500:
        code = LLMErrorCode.SERVER_ERROR
    else:
        code = LLMErrorCode.REJECTED
    return LLMError(code, f"HTTP {status}: {reason}" if reason else f"HTTP {status}")


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


class HTTPStreamingLLM(LLMEngine):
    """An engine that POSTs JSON and reads the answer as server-sent events.

    Subclasses say what to send (``build_request``) and how to read the
    events (``read_deltas``); this class owns the connection, the deadline
    for the first token and the mapping of every failure to LLMError.
    """

    def __init__(self, settings: LLMSettings) -> None:
        super().__init__(settings)
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        # The read timeout catches a stall after the first token; the first token has its own deadline below.
        self._client = settings.outbound.http_client(timeout=httpx.Timeout(settings.timeout_s), headers=headers)

    @abstractmethod
    def build_request(self, messages: list[dict]) -> tuple[str, dict]:
        """The path under base_url and the JSON body that ask for a streamed answer to ``messages``."""

    @abstractmethod
    def read_deltas(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[str]:
        """Yield the text deltas in ``events``; raise LLMError for an error event or a stream that ends early."""

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        path, body = self.build_request(messages)
        url = self.settings.base_url.rstrip("/") + path
        shown = redact_url(url)  # as errors name it: a key in the URL's query reaches no log or message
        timeout_s = self.settings.timeout_s
        try:
            async with contextlib.AsyncExitStack() as stack:
                # The deadline covers connecting, the response headers and the first delta: a server that
                # accepts the request but thinks for longer than timeout_s fails here, not minutes later.
                async with asyncio.timeout(timeout_s):
                    response = await stack.enter_async_context(self._client.stream("POST", url, json=body))
                    if response.status_code >= 400:
                        raise error_for_status(response.status_code, error_reason(await response.aread()))
                    deltas = self.read_deltas(iter_sse(response.aiter_lines()))
                    await stack.enter_async_context(contextlib.aclosing(deltas))
                    first = await anext(deltas, None)
                if first is None:
                    return
                yield first
                async for delta in self._paced(deltas, shown):
                    yield delta
        except TimeoutError:
            raise LLMError(LLMErrorCode.TIMEOUT, f"no answer from {shown} within {timeout_s:g} s") from None
        except httpx.TimeoutException as exc:
            raise LLMError(
                LLMErrorCode.TIMEOUT, f"{shown} stalled for {timeout_s:g} s ({type(exc).__name__})"
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise LLMError(
                LLMErrorCode.BROKEN_STREAM, f"connection to {shown} broke: {exc or type(exc).__name__}"
            ) from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise LLMError(LLMErrorCode.UNREACHABLE, f"cannot reach {shown}: {exc or type(exc).__name__}") from None
        except httpx.RequestError as exc:
            refused = refusal_of(exc)
            if refused is None:
                raise LLMError(LLMErrorCode.UNREACHABLE, f"cannot reach {shown}: {type(exc).__name__}") from None
            raise LLMError(LLMErrorCode.REFUSED, str(refused)) from None

    async def _paced(self, deltas: AsyncIterator[str], shown: str) -> AsyncIterator[str]:
        """The deltas after the first, each within ``idle_timeout_s`` of the one before and all of them within
        ``answer_deadline_s`` of this point: a server that drips tokens (or keep-alives) cannot hold an answer
        open for ever."""
        loop = asyncio.get_running_loop()
        idle, total = self.settings.idle_timeout_s, self.settings.answer_deadline_s
        deadline = loop.time() + total
        while True:
            try:
                async with asyncio.timeout(max(0.0, min(idle, deadline - loop.time()))):
                    delta = await anext(deltas, None)
            except TimeoutError:
                if loop.time() >= deadline:
                    raise LLMError(LLMErrorCode.TIMEOUT, f"{shown} did not finish its answer in {total:g} s") from None
                raise LLMError(LLMErrorCode.TIMEOUT, f"{shown} sent nothing for {idle:g} s mid-answer") from None
            if delta is None:
                return
            yield delta

    async def aclose(self) -> None:
        await self._client.aclose()
