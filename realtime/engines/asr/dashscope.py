"""Alibaba Cloud DashScope real-time Paraformer: streaming recognition over a WebSocket, as the user speaks.

The protocol (DashScope's WebSocket API for real-time Paraformer): the client
opens ``wss://dashscope.aliyuncs.com/api-ws/v1/inference`` with
``Authorization: bearer <key>`` and sends a ``run-task`` JSON message naming
the model and the audio format; the server answers ``task-started``; the
client then sends the audio as binary messages (raw 16-bit PCM, about 100 ms
each) while the server pushes ``result-generated`` events, each holding one
sentence: intermediate while ``sentence_end`` is false, final when true. The
client's ``finish-task`` ends the audio; the server sends the remaining
results and ``task-finished``. ``task-failed`` (with ``error_code`` and
``error_message``) ends a task at any point.

One task per turn: the connection opens with the turn's first audio and
closes at its end. Events are read between sends without waiting, so a turn
never waits on the network until ``finish``. The address is resolved and
checked by the outbound policy before connecting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from realtime.engines.asr.base import ASREngine, ASRError, CloudASRSettings
from realtime.engines.base import EngineUnavailable
from realtime.net.outbound import OutboundRefused
from realtime.net.redact import redact_url

logger = logging.getLogger(__name__)

DEFAULT_URL = "wss://dashscope.aliyuncs.com/api-ws/v1/inference"
DEFAULT_MODEL = "paraformer-realtime-v2"
FRAME_SAMPLES = 1600  # 100 ms at 16 kHz: the packet size the service recommends
CLOSE_TIMEOUT_S = 2.0  # an abandoned task's socket gets this long to close politely


def _join(sentences: list[str]) -> str:
    """Sentences in order: Chinese ones run together, Latin ones keep a space between them."""
    text = ""
    for sentence in filter(None, sentences):
        if text and text[-1].isascii() and sentence[0].isascii() and not text[-1].isspace():
            text += " "
        text += sentence
    return text


@dataclass
class _Task:
    """One turn's recognition task on its own connection."""

    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    socket: ClientConnection | None = None
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))  # audio short of a whole frame
    sentences: list[str] = field(default_factory=list)  # finished sentences
    current: str = ""  # the sentence being spoken, as recognised so far
    reported: str = ""  # the partial transcript last returned
    started: bool = False
    finished: bool = False

    def text(self) -> str:
        return _join([*self.sentences, self.current])


class DashScopeRealtimeASR(ASREngine):
    """Streams each turn to DashScope and returns its intermediate and final sentences."""

    def __init__(self, settings: CloudASRSettings) -> None:
        if not settings.api_key:
            raise EngineUnavailable("The DashScope real-time engine needs the role's ASR API key (a DashScope key).")
        self.settings = settings
        self.url = settings.base_url or DEFAULT_URL
        self.shown_url = redact_url(self.url)  # as messages name it: no key from its query
        parts = urlsplit(self.url)
        if parts.scheme not in ("wss", "ws") or not parts.hostname:
            raise EngineUnavailable(f"The DashScope real-time engine needs a wss:// URL, not {self.shown_url!r}.")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "wss" else 80)
        self.secure = parts.scheme == "wss"
        self._task: _Task | None = None
        self._abandoned: list[_Task] = []

    def start(self) -> None:
        self._abandon()
        self._task = _Task()

    async def accept(self, pcm16k: np.ndarray) -> str | None:
        await self._close_abandoned()
        if self._task is None:
            self.start()
        task = self._task
        try:
            if task.socket is None:
                await self._open(task)
            task.pending = np.concatenate([task.pending, np.asarray(pcm16k, dtype=np.int16)])
            while len(task.pending) >= FRAME_SAMPLES:
                frame, task.pending = task.pending[:FRAME_SAMPLES], task.pending[FRAME_SAMPLES:]
                await task.socket.send(frame.tobytes())
            await self._poll(task)
        except ASRError:
            self.reset()
            raise
        text = task.text()
        if text == task.reported:
            return None
        task.reported = text
        return text

    async def finish(self) -> str:
        await self._close_abandoned()
        task, self._task = self._task, None
        if task is None or task.socket is None:
            return ""  # no audio was sent: nothing was opened
        try:
            if len(task.pending):
                await task.socket.send(task.pending.tobytes())
            await task.socket.send(json.dumps(self._message("finish-task", {"input": {}}, task)))
            async with asyncio.timeout(self.settings.timeout_s):
                while not task.finished:
                    await self._next_event(task)
        except TimeoutError:
            raise ASRError(f"no task-finished from {self.host} within {self.settings.timeout_s:g} s") from None
        except ConnectionClosed as exc:
            raise ASRError(f"{self.host} closed the connection before task-finished ({_close_code(exc)})") from None
        finally:
            await self._close(task)
        return task.text()

    def reset(self) -> None:
        self._abandon()

    async def aclose(self) -> None:
        self._abandon()
        await self._close_abandoned()

    # --- internals -------------------------------------------------------------------------------------------

    @staticmethod
    def _message(action: str, payload: dict[str, Any], task: _Task) -> dict[str, Any]:
        return {"header": {"action": action, "task_id": task.task_id, "streaming": "duplex"}, "payload": payload}

    def _run_task(self, task: _Task) -> dict[str, Any]:
        parameters: dict[str, Any] = {"format": "pcm", "sample_rate": self.sample_rate}
        if self.settings.primary_language:
            parameters["language_hints"] = [self.settings.primary_language]
        payload = {
            "task_group": "audio",
            "task": "asr",
            "function": "recognition",
            "model": self.settings.model or DEFAULT_MODEL,
            "parameters": parameters,
            "input": {},
        }
        return self._message("run-task", payload, task)

    async def _open(self, task: _Task) -> None:
        """Connect (to the address the policy checked), start the task and wait for ``task-started``."""
        timeout_s = self.settings.timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                address = await self.settings.outbound.resolve(self.host, self.port)
                task.socket = await connect(
                    self.url,
                    host=address,
                    port=self.port,
                    server_hostname=self.host if self.secure else None,
                    additional_headers={"Authorization": f"bearer {self.settings.api_key}"},
                    open_timeout=None,  # the deadline above covers connecting and the task's start
                )
                await task.socket.send(json.dumps(self._run_task(task)))
                while not task.started:
                    await self._next_event(task)
        except OutboundRefused as refused:
            raise ASRError(f"outbound policy: {refused}") from None
        except TimeoutError:
            raise ASRError(f"no task-started from {self.host} within {timeout_s:g} s") from None
        except InvalidStatus as exc:
            raise ASRError(f"{self.host} refused the connection: HTTP {exc.response.status_code}") from None
        except ConnectionClosed as exc:
            raise ASRError(f"{self.host} closed the connection before task-started ({_close_code(exc)})") from None
        except (OSError, WebSocketException) as exc:
            raise ASRError(f"cannot connect to {self.shown_url}: {exc or type(exc).__name__}") from None

    async def _poll(self, task: _Task) -> None:
        """Handle every event that has already arrived, without waiting for more."""
        while True:
            try:
                async with asyncio.timeout(0):  # websockets' recv is cancellation-safe: nothing is lost
                    message = await task.socket.recv()
            except TimeoutError:
                return
            except ConnectionClosed as exc:
                raise ASRError(f"{self.host} closed the connection mid-turn ({_close_code(exc)})") from None
            self._handle(task, message)

    async def _next_event(self, task: _Task) -> None:
        self._handle(task, await task.socket.recv())

    def _handle(self, task: _Task, message: str | bytes) -> None:
        try:
            event = json.loads(message)
            header = event["header"]
            kind = header["event"]
        except (ValueError, KeyError, TypeError):
            raise ASRError(f"{self.host} sent a message outside the protocol: {message[:120]!r}") from None
        if header.get("task_id") != task.task_id:
            raise ASRError(f"{self.host} answered for another task ({header.get('task_id')!r})")
        if kind == "task-started":
            task.started = True
        elif kind == "result-generated":
            sentence = ((event.get("payload") or {}).get("output") or {}).get("sentence") or {}
            if sentence.get("heartbeat"):
                return
            if sentence.get("sentence_end"):
                task.sentences.append(str(sentence.get("text", "")))
                task.current = ""
            else:
                task.current = str(sentence.get("text", ""))
        elif kind == "task-finished":
            task.finished = True
        elif kind == "task-failed":
            raise ASRError(f"DashScope task failed: {header.get('error_code')}: {header.get('error_message')}")

    def _abandon(self) -> None:
        if self._task is not None and self._task.socket is not None:
            self._abandoned.append(self._task)
        self._task = None

    async def _close_abandoned(self) -> None:
        abandoned, self._abandoned = self._abandoned, []
        for task in abandoned:
            await self._close(task)

    async def _close(self, task: _Task) -> None:
        if task.socket is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await task.socket.close()
        except (TimeoutError, OSError, WebSocketException) as exc:
            logger.info("DashScope socket did not close cleanly: %s", exc or type(exc).__name__)


def _close_code(exc: ConnectionClosed) -> str:
    return f"close code {exc.rcvd.code}: {exc.rcvd.reason}" if exc.rcvd else "no close frame"
