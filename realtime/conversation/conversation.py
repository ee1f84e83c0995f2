"""One session's conversation: mic → talk gate → VAD → streaming ASR → turn → LLM answer, and barge-in.

It drives the session through ``ConversationHost`` (implemented by
``LiveSession``) and never touches Django: the session's owner stores the
Messages (``start_turn``) and turns notifications into WebSocket events.

Engines: the LLM (cheap, per session) is made at once; the ASR engine and
the VAD model load in the background, so the session is up at once and a
missing ASR model is reported as an error event while the avatar goes on
talking (text ``say`` still works).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Protocol

from aiortc.mediastreams import MediaStreamTrack

from realtime.clock import SessionClock
from realtime.engines.asr.base import ASREngine, ASRError
from realtime.engines.base import EngineUnavailable
from realtime.engines.llm.base import LLMEngine
from realtime.engines.registry import UnknownEngine, engine_class
from realtime.pipeline import TaskOwner
from realtime.vad import TurnDetector

from .answers import Answerer, AnswerWriter
from .apology import unheard_apology
from .gate import TalkGate, may_barge_in
from .history import History
from .listening import Listener, Recogniser
from .mic import mic_chunks
from .settings import ConversationSettings, TalkMode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnRows:
    """The Messages a user turn creates: the user's words, and the (still empty) answer."""

    user_message_id: int
    answer_message_id: int


class ConversationHost(Protocol):
    """What the conversation needs from its session; it reports what happened and the host keeps its own state."""

    owner: TaskOwner
    clock: SessionClock

    def busy(self) -> bool:
        """The avatar is speaking, or an answer is on its way."""

    def speech_started(self) -> None:
        """A turn was accepted: the user is talking."""

    def turn_ended(self) -> None:
        """The user stopped talking; the turn waits for its final transcript."""

    def turn_recognised(self) -> None:
        """A turn's final transcript is in (and its answer, if any, opened)."""

    async def interrupt(self) -> None: ...

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        """Store the user's words and an empty answer Message."""

    def open_message(self, message_id: int, *, started_at: float, asr_ms: int | None) -> AnswerWriter:
        """Start an answer whose text will stream in; its timings count from ``started_at`` (session clock)."""

    def notify_transcript(self, text: str, final: bool, message_id: int | None) -> None: ...

    def notify_error(self, code: str, message: str) -> None: ...


class Conversation:
    """Listens to the page's mic, takes the user's turns and answers them through the session's speech path."""

    def __init__(
        self,
        host: ConversationHost,
        settings: ConversationSettings,
        *,
        llm: LLMEngine | None = None,
        asr: ASREngine | None = None,
    ) -> None:
        self.host = host
        self.settings = settings
        self.gate = TalkGate(settings.talk_mode)
        self.history = History()
        self.llm = llm or engine_class("llm", settings.llm_engine)(settings.llm)
        self.answerer = Answerer(
            self.llm, self.history, host.owner, language=settings.language, on_error=host.notify_error
        )
        self.asr = asr
        self.recogniser: Recogniser | None = None
        self.listener: Listener | None = None  # None until the ASR and VAD have loaded, or when they cannot
        self._prepared = asyncio.Event()
        self._paused = False
        self._unheard = False  # the recogniser failed on the turn whose final transcript comes next

    def start(self) -> None:
        """Load the ASR engine and the VAD model in the background."""
        self.host.owner.spawn(self._prepare(), name="conversation.prepare")

    def listen(self, track: MediaStreamTrack) -> None:
        """Hear the page's mic track. Named like the plain reader it replaces: frames must always be read."""
        self.host.owner.spawn(self._hear(track), name="session.remote_audio")

    def set_mode(self, mode: TalkMode) -> None:
        self.gate.set_mode(mode)

    def set_talking(self, on: bool) -> None:
        """The push-to-talk button went down (``on``) or up."""
        if on:
            self.gate.press()
        else:
            self.gate.release(self.host.clock.now())

    async def cancel_answers(self) -> None:
        await self.answerer.cancel()

    async def use_settings(self, settings: ConversationSettings) -> None:
        """Talk as another role from now on (``switch_role``; its answers were already cut): its LLM engine and
        prompt, its language, and its ASR engine when that differs. The history stays: it is the same user."""
        old, self.settings = self.settings, settings
        old_llm, self.llm = self.llm, engine_class("llm", settings.llm_engine)(settings.llm)
        self.answerer.llm, self.answerer.language = self.llm, settings.language
        await old_llm.aclose()
        same_asr = (settings.asr_engine, dict(settings.asr_options)) == (old.asr_engine, dict(old.asr_options))
        if same_asr or self.recogniser is None:
            return  # unchanged, or not loaded yet (it will load with the new settings)
        try:
            asr = await asyncio.get_running_loop().run_in_executor(None, self._make_asr)
            await asr.load()
        except (EngineUnavailable, UnknownEngine) as exc:
            self.settings = replace(settings, asr_engine=old.asr_engine, asr_options=old.asr_options)
            self.host.notify_error("asr_unavailable", str(exc))
            return
        old_asr, self.asr = self.asr, asr
        self.recogniser.use(asr)  # a turn being spoken right now is dropped: it began with the old engine
        await old_asr.aclose()

    async def aclose(self) -> None:
        """Release the engines' per-session resources (the session's tasks are already stopped)."""
        await self.llm.aclose()
        if self.asr is not None:
            await self.asr.aclose()

    # --- RecognitionEvents ----------------------------------------------------------------------------------

    def partial(self, text: str) -> None:
        self.host.notify_transcript(text, False, None)

    async def final(self, text: str, ended_at: float, asr_ms: int) -> None:
        unheard, self._unheard = self._unheard, False
        try:
            if not text and not unheard:
                self.host.notify_transcript("", True, None)
                return
            # A turn whose words were lost is stored with empty text, and the avatar says it did not hear.
            rows = await self.host.start_turn(text, asr_ms)
            self.host.notify_transcript(text, True, rows.user_message_id)
            writer = self.host.open_message(rows.answer_message_id, started_at=ended_at, asr_ms=asr_ms)
            if text:
                self.history.add_user(text)
                self.answerer.answer(writer)
            else:
                await writer.add(unheard_apology(self.settings.language))
                await writer.end()
        finally:
            self.host.turn_recognised()

    def failed(self, error: ASRError) -> None:
        self._unheard = True
        self.host.notify_error("asr_failed", str(error))

    # --- internals -------------------------------------------------------------------------------------------

    async def _prepare(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.asr is None:  # a constructor may check model files: off the loop
                self.asr = await loop.run_in_executor(None, self._make_asr)
            await self.asr.load()
            detector = await loop.run_in_executor(None, self._make_detector)  # the first one loads the model
        except (EngineUnavailable, UnknownEngine) as exc:
            logger.warning("voice input unavailable: %s", exc)
            self.host.notify_error("asr_unavailable", str(exc))
        else:
            self.recogniser = Recogniser(self.asr, self.host.clock, self)
            self.host.owner.spawn(self.recogniser.run(), name="conversation.asr")
            self.listener = Listener(
                detector, self.recogniser, self.host.clock, on_speech=self._speech_started, on_end=self._turn_ended
            )
        finally:
            self._prepared.set()

    def _make_asr(self) -> ASREngine:
        return engine_class("asr", self.settings.asr_engine)(**self.settings.asr_options)

    def _make_detector(self) -> TurnDetector:
        return TurnDetector(
            silence_ms=self.settings.vad_silence_ms,
            min_speech_ms=self.settings.vad_min_speech_ms,
            sentence_silence_ms=self.settings.vad_sentence_silence_ms,
        )

    async def _hear(self, track: MediaStreamTrack) -> None:
        await self._prepared.wait()  # meanwhile aiortc queues the frames; they are caught up with below
        async for chunk in mic_chunks(track):
            listener = self.listener
            if listener is None:
                continue  # no voice input, but the frames must still be read
            if self.gate.admits(self.host.clock.now()):
                self._paused = False
                await listener.feed(chunk)
            elif not self._paused:
                self._paused = True
                listener.pause()

    async def _speech_started(self) -> bool:
        if self.host.busy():
            if not may_barge_in(self.settings.barge_in, self.gate.mode):
                return False  # the avatar keeps the floor: this speech is not a turn
            await self.host.interrupt()
        self.host.speech_started()
        return True

    def _turn_ended(self) -> None:
        self.host.turn_ended()
