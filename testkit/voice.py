"""A client that talks: an aiortc audio track that speaks synthesised utterances at real time, as a mic would.

``SpeakingTrack`` sends 48 kHz mono 20-ms frames paced by the loop clock,
silence between utterances; ``say(utterance)`` queues one and returns a
``Spoken`` record that tells when its audio went out, so tests and the
benchmark can time the reply from the moment the voice ended. ``TalkingPeer``
is the receiving client of ``testkit.peers`` with this track as its mic.
``Recorder`` stands in for a session's owner and keeps what the session tells it.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.audio import to_48k
from realtime.conversation import TurnRows
from realtime.ledger import MessageTimings
from testkit.peers import ReceivingPeer
from testkit.speech import Utterance

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms: the opus frame size browsers send
TIME_BASE = fractions.Fraction(1, RATE)


@dataclass
class Spoken:
    """One queued utterance; ``started_at`` (loop time) is when its first sample was due, once it has been, and
    ``started_s`` where it starts in the track's own media time (its pts in seconds), however late it was read."""

    utterance: Utterance
    samples: np.ndarray  # 48 kHz
    speed: float
    started_at: float | None = None
    started_s: float | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def voice_end(self) -> float:
        """Loop time at which the last audible sample of the utterance went out."""
        assert self.started_at is not None, "not spoken yet"
        return self.started_at + self.utterance.speech_end_s / self.speed


class SpeakingTrack(MediaStreamTrack):
    """Silence, and the queued utterances one after another, at real time (or ``speed`` times faster, for tests
    that feed a session directly and need no real-time pacing)."""

    kind = "audio"

    def __init__(self, speed: float = 1.0) -> None:
        super().__init__()
        self.speed = speed
        self._queue: list[Spoken] = []
        self._current: Spoken | None = None
        self._offset = 0
        self._start: float | None = None
        self._pts = 0

    @property
    def read_s(self) -> float:
        """Media time (s) up to which the track's reader has taken audio: a measure of how far the listener has
        heard that does not depend on how late it read."""
        return 0.0 if self._start is None else (self._pts + FRAME_SAMPLES) / RATE

    def say(self, utterance: Utterance) -> Spoken:
        spoken = Spoken(utterance, to_48k(utterance.samples), self.speed)
        self._queue.append(spoken)
        return spoken

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            self._pts += FRAME_SAMPLES
        due = self._start + self._pts / RATE / self.speed
        await asyncio.sleep(max(0.0, due - loop.time()))
        frame = av.AudioFrame.from_ndarray(self._next_samples(due).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        return frame

    def _next_samples(self, due: float) -> np.ndarray:
        if self._current is None and self._queue:
            self._current, self._offset = self._queue.pop(0), 0
            self._current.started_at = due
            self._current.started_s = self._pts / RATE
        out = np.zeros(FRAME_SAMPLES, np.int16)
        if self._current is not None:
            piece = self._current.samples[self._offset : self._offset + FRAME_SAMPLES]
            out[: len(piece)] = piece
            self._offset += FRAME_SAMPLES
            if self._offset >= len(self._current.samples):
                self._current.finished.set()
                self._current = None
        return out


@dataclass
class TalkingPeer(ReceivingPeer):
    """The recording client peer, with a ``SpeakingTrack`` as its microphone."""

    voice: SpeakingTrack = field(default_factory=SpeakingTrack)

    def __post_init__(self) -> None:
        self.peer.on("track", self._on_track)
        self.peer.addTrack(self.voice)
        self.peer.addTransceiver("video", direction="recvonly")

    async def say(self, utterance: Utterance) -> Spoken:
        """Speak ``utterance`` and wait until all of it (its trailing silence included) has gone out."""
        spoken = self.voice.say(utterance)
        await spoken.finished.wait()
        return spoken


# --- a live session heard directly (no WebRTC, no database) ------------------------------------------------


class Recorder:
    """The session's owner in tests: keeps every event with its loop time; numbers the Messages of each turn."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, tuple]] = []
        self.turns: list[tuple[str, int]] = []  # (text, asr_ms) of each stored user turn
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    async def _add(self, kind: str, *args: Any) -> None:
        async with self._changed:
            self.events.append((asyncio.get_running_loop().time(), kind, args))
            self._changed.notify_all()

    async def state_changed(self, state: str) -> None:
        await self._add("state", state)

    async def subtitle(self, text: str, message_id: int) -> None:
        await self._add("subtitle", text, message_id)

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None:
        await self._add("finished", message_id, timings)

    async def error(self, code: str, message: str) -> None:
        await self._add("error", code, message)

    async def ended(self, reason: str) -> None:
        await self._add("ended", reason)

    async def media_started(self) -> None:
        await self._add("media_started")

    async def transcript(self, text: str, final: bool, message_id: int | None) -> None:
        await self._add("transcript", text, final, message_id)

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        self.turns.append((text, asr_ms))
        return TurnRows(next(self._ids), next(self._ids))

    def of(self, kind: str) -> list[tuple]:
        return [args for _, event, args in self.events if event == kind]

    async def wait_for(self, kind: str, test: Callable[..., bool] = lambda *args: True, timeout: float = 20) -> tuple:
        """The first ``kind`` event whose arguments pass ``test``, seen so far or arriving within ``timeout``."""

        def found() -> tuple | None:
            return next((args for args in self.of(kind) if test(*args)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        return found()

    def finished(self, message_id: int) -> MessageTimings | None:
        return next((timings for mid, timings in self.of("finished") if mid == message_id), None)


class RecordingEvents:
    """``SessionEvents`` for a ``LiveSession`` without a consumer: keeps the states it was told, ignores the rest."""

    def __init__(self) -> None:
        self.states: list[str] = []

    async def state_changed(self, state: str) -> None:
        self.states.append(state)

    async def subtitle(self, text: str, message_id: int) -> None: ...

    async def message_finished(self, message_id: int, timings: Any) -> None: ...

    async def error(self, code: str, message: str) -> None: ...

    async def ended(self, reason: str) -> None: ...

    async def media_started(self) -> None: ...
