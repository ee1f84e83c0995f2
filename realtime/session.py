"""LiveSession: one chat session's media on the process that owns it — peer connection, pipeline, speaking state.

It knows nothing of Django or WebSockets: the consumer builds it from a
``SessionConfig`` and hears from it through ``SessionEvents``. Speaking state is
a small machine, idle ↔ speaking: a message goes on air when its first frame is
shown and the session is idle again when the last queued message has played or
an interrupt cut everything. Each message's timings are measured on the session
clock: first TTS audio, first frame on air, end on air.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from .clock import SessionClock
from .config import SessionConfig
from .conversation import Conversation, TalkMode, TurnRows
from .conversation.spoken import MeasuredTTS, SentenceDurations, SpokenText
from .degrade import FpsGovernor
from .media_codecs import install_fast_encoders
from .net.ice import rtc_configuration
from .pipeline import MessageStream, SpeechPipeline, TaskOwner
from .pool import Lease, ModelPool
from .timeline import FrameRate, PlayoutTimeline
from .tracks import AvatarAudioTrack, AvatarVideoTrack

logger = logging.getLogger(__name__)

PEER_CLOSE_TIMEOUT_S = 3.0  # a peer connection that will not close cleanly is abandoned: the session must end


class SpeakingState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"  # the user is talking
    THINKING = "thinking"  # the user's turn ended; the answer is not on air yet
    SPEAKING = "speaking"


@dataclass(frozen=True)
class MessageTimings:
    """Milliseconds from the start of the turn (the ``say``, or the end of the user's spoken turn) to each point;
    None when the message never got that far. ``text`` is what was said: all of it, or when ``interrupted`` the
    words that went on air before the cut."""

    tts_first_audio_ms: int | None
    first_frame_ms: int | None
    total_ms: int
    interrupted: bool
    asr_ms: int | None = None
    llm_first_token_ms: int | None = None
    text: str = ""


class SessionEvents(Protocol):
    """What a live session tells its owner (the consumer), in the order it happened."""

    async def state_changed(self, state: str) -> None: ...

    async def subtitle(self, text: str, message_id: int) -> None: ...

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None: ...

    async def error(self, code: str, message: str) -> None: ...

    async def ended(self, reason: str) -> None:
        """The session cannot go on (``ice_failed``, ``error``); the owner should close it."""

    async def media_started(self) -> None:
        """The peer connection is up: the page hears and sees the avatar from now on (the time to greet)."""

    async def transcript(self, text: str, final: bool, message_id: int | None) -> None:
        """The user's words: partial while they speak, then final (with the stored Message's id)."""

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        """Store the user's Message and an empty assistant Message for the answer; called directly (not queued)."""


class SessionError(Exception):
    """A request the session cannot honour in its current state; ``code`` goes to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Utterance:
    said_at: float
    asr_ms: int | None = None
    first_token_at: float | None = None
    first_audio_at: float | None = None
    first_frame_at: float | None = None
    spoken: SpokenText = field(default_factory=SpokenText)

    def timings(self, now: float, *, interrupted: bool, durations: SentenceDurations) -> MessageTimings:
        def ms(at: float | None) -> int | None:
            return None if at is None else max(0, round((at - self.said_at) * 1000))

        return MessageTimings(
            tts_first_audio_ms=ms(self.first_audio_at),
            first_frame_ms=ms(self.first_frame_at),
            total_ms=ms(now),
            interrupted=interrupted,
            asr_ms=self.asr_ms,
            llm_first_token_ms=ms(self.first_token_at),
            text=self.spoken.until(now, durations.get) if interrupted else self.spoken.full(),
        )


class MessageWriter:
    """An answer streaming in (the conversation's ``AnswerWriter``): queues its chunks, notes its first token."""

    def __init__(self, utterance: _Utterance, stream: MessageStream, clock: SessionClock) -> None:
        self.message_id = stream.message_id
        self._utterance = utterance
        self._stream = stream
        self._clock = clock

    @property
    def text(self) -> str:
        return self._utterance.spoken.queued

    def first_token(self) -> None:
        if self._utterance.first_token_at is None:
            self._utterance.first_token_at = self._clock.now()

    async def add(self, text: str) -> None:
        self._utterance.spoken.queue(text)
        await self._stream.add(text)

    async def end(self) -> None:
        await self._stream.end()


class LiveSession:
    """Media, speech pipeline and state of one session. Create with ``open``; ``close`` frees everything."""

    def __init__(self, config: SessionConfig, lease: Lease, events: SessionEvents) -> None:
        self.config = config
        self.lease = lease
        self.events = events
        self.clock = SessionClock()
        self.timeline = PlayoutTimeline()
        self.rate = FrameRate(config.fps)  # lowered and raised again by the governor under load
        self.governor = FpsGovernor(self.rate, config.degrade, now=self.clock.now, on_change=self._fps_changed)
        self.owner = TaskOwner(on_error=self._task_failed)
        self.durations = SentenceDurations()  # how long each sentence sounds: where an interrupt cut it
        self.audio_track = AvatarAudioTrack(self.clock, self.timeline)
        self.video_track = AvatarVideoTrack(
            self.clock, self.timeline, lease.avatar, self.rate, on_skipped=self.governor.late
        )
        self.pipeline = SpeechPipeline(
            owner=self.owner,
            clock=self.clock,
            timeline=self.timeline,
            rate=self.rate,
            avatar=lease.avatar,
            tts=MeasuredTTS(lease.tts, self.durations),
            render=lease.render,
            listener=self,
            settings=config.playout,
            load=self.governor,
        )
        self.state = SpeakingState.IDLE
        self.last_activity = self.clock.now()  # when the state last changed: speech, thinking or an answer
        self.speaking_text = ""
        self.peer: RTCPeerConnection | None = None
        self.media_started = False  # the peer connection has connected once
        self.closed = False
        self.conversation: Conversation | None = None  # voice turns and LLM answers, when the config has them
        self.listening = False
        self.recognising = 0
        self._speaking = False  # a message has gone on air and messages are still queued or playing
        self._utterances: dict[int, _Utterance] = {}
        self._outbox: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()

    @classmethod
    async def open(cls, config: SessionConfig, pool: ModelPool, events: SessionEvents) -> LiveSession:
        """Lease the session's engines and avatar from the pool (loading them if needed) and start the pipeline."""
        lease = await pool.lease(
            tts_engine=config.tts_engine,
            voice=config.voice,
            lipsync_engine=config.lipsync_engine,
            avatar_path=config.avatar_path,
        )
        try:
            session = cls(config, lease, events)
            session.owner.spawn(session._forward_events(), name="session.events")
            if config.idle_timeout_s > 0:
                session.owner.spawn(session._end_when_idle(config.idle_timeout_s), name="session.idle")
            session.pipeline.start()
            if config.conversation is not None:
                session.conversation = Conversation(session, config.conversation)
                session.conversation.start()
        except BaseException:
            lease.release()
            raise
        return session

    # --- signaling -------------------------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        """Answer the page's offer: one audio and one video track out; a mic track in, when the page sends one."""
        if self.peer is not None:
            raise SessionError("already_connected", "This session already has a peer connection.")
        configuration = rtc_configuration(self.config.ice_servers, self.config.ice_transport_policy)
        peer = self.peer = RTCPeerConnection(configuration)
        peer.on("track", self._remote_track)  # fires inside setRemoteDescription
        peer.on("connectionstatechange", self._connection_state_changed)
        try:
            await peer.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except ValueError as exc:
            self.peer = None  # the page may send a corrected offer
            await peer.close()
            raise SessionError("bad_offer", f"The offer could not be read: {exc}") from exc
        peer.addTrack(self.audio_track)
        peer.addTrack(self.video_track)
        await peer.setLocalDescription(await peer.createAnswer())
        install_fast_encoders(peer)
        return peer.localDescription.sdp

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """A trickled ICE candidate from the page; an empty one means the page has no more."""
        if self.peer is None:
            raise SessionError("no_offer", "Send the offer before ICE candidates.")
        if not candidate:
            await self.peer.addIceCandidate(None)
            return
        try:
            ice = candidate_from_sdp(candidate.removeprefix("candidate:"))
        except (ValueError, IndexError) as exc:
            raise SessionError("bad_candidate", f"The ICE candidate could not be read: {exc}") from exc
        ice.sdpMid = sdp_mid
        ice.sdpMLineIndex = sdp_mline_index
        await self.peer.addIceCandidate(ice)

    # --- speech ----------------------------------------------------------------------------------------------

    async def say(self, text: str, message_id: int, *, interrupt: bool = False) -> None:
        """Speak ``text`` after what is queued, or instead of it with ``interrupt``. Raises ``PipelineFull``."""
        if interrupt:
            await self.interrupt()
        utterance = self._utterances[message_id] = _Utterance(self.clock.now())
        try:
            self.pipeline.say(text, message_id)
        except Exception:
            del self._utterances[message_id]
            raise
        utterance.spoken.queue(text)
        if self.conversation is not None:
            self.conversation.history.set_assistant(message_id, text.strip())
        self.refresh_state()

    def open_message(self, message_id: int, *, started_at: float, asr_ms: int | None = None) -> MessageWriter:
        """Start a message whose text streams in (an LLM answer), timed from ``started_at`` (session clock)."""
        utterance = self._utterances[message_id] = _Utterance(started_at, asr_ms=asr_ms)
        self.refresh_state()
        return MessageWriter(utterance, self.pipeline.open_message(message_id), self.clock)

    async def interrupt(self) -> None:
        """Stop the answers being written, cut every queued and playing message; the next audio packet is silence."""
        await self._cut()

    async def switch_role(self, config: SessionConfig) -> None:
        """Become another role without reconnecting: its avatar, voice, fps, prompt and LLM settings.

        What is being said is cut (it was the old role's words). The new role's
        models come from the pool, so for a preloaded role this is a swap of
        references. Raises what ``ModelPool.lease`` raises, leaving the session as it was.
        """
        lease = await self.lease.pool.lease(
            tts_engine=config.tts_engine,
            voice=config.voice,
            lipsync_engine=config.lipsync_engine,
            avatar_path=config.avatar_path,
        )
        old, self.lease, self.config = self.lease, lease, config
        self.video_track.avatar = lease.avatar
        await self._cut(avatar=lease.avatar, tts=MeasuredTTS(lease.tts, self.durations), render=lease.render)
        old.release()
        self.governor.reset(config.fps)
        if self.conversation is not None and config.conversation is not None:
            await self.conversation.use_settings(config.conversation)
        self._notify(self.events.state_changed, self.state.value)  # with the new role's fps
        logger.info("session %s: now role %s (%d fps)", config.session_id, config.role_name, config.fps)

    async def _cut(self, **swap: Any) -> None:
        """Interrupt; ``swap`` (avatar, tts, render) goes into the pipeline while its stages are stopped."""
        if self.conversation is not None:
            await self.conversation.cancel_answers()
        cut, self._utterances = self._utterances, {}  # a cue firing while the stages stop now finds nothing
        now = self.clock.now()
        await self.pipeline.restart(**swap)
        for message_id, utterance in cut.items():
            self._finish(message_id, utterance, now, interrupted=True)
        self._speaking = False
        self.refresh_state()

    def set_talk_mode(self, mode: TalkMode) -> None:
        """The page's ``mode``: push-to-talk or hands-free."""
        if self.conversation is not None:
            self.conversation.set_mode(mode)

    def set_talking(self, on: bool) -> None:
        """The page's push-to-talk button went down (``on``) or up."""
        if self.conversation is not None:
            self.conversation.set_talking(on)

    def busy(self) -> bool:
        """The avatar is speaking, or a message is on its way to the air."""
        return bool(self._utterances)

    def snapshot(self) -> dict[str, Any]:
        """The wire form of ``GET sessions/<id>/state`` (DESIGN.md §7)."""
        return {
            "state": self.state.value,
            "role": self.config.role_id,
            "fps": self.rate.fps,
            "speaking_text": self.speaking_text,
        }

    # --- PipelineListener (called on the event loop by the pipeline) ------------------------------------------

    def audio_started(self, message_id: int) -> None:
        utterance = self._utterances.get(message_id)
        if utterance is not None and utterance.first_audio_at is None:
            utterance.first_audio_at = self.clock.now()

    def sentence_on_air(self, message_id: int, text: str) -> None:
        utterance = self._utterances.get(message_id)
        if utterance is None:
            return
        now = self.clock.now()
        if utterance.first_frame_at is None:
            utterance.first_frame_at = now
        utterance.spoken.on_air(text, now)
        self.speaking_text = text.strip()  # the splitter leaves the space after a sentence on its chunk
        self._speaking = True
        self.refresh_state()
        self._notify(self.events.subtitle, self.speaking_text, message_id)

    def message_played(self, message_id: int) -> None:
        utterance = self._utterances.pop(message_id, None)
        if utterance is None:
            return
        self._finish(message_id, utterance, self.clock.now(), interrupted=False)
        if not self._utterances:
            self._speaking = False
        self.refresh_state()

    def sentence_failed(self, message_id: int, text: str, error: Exception) -> None:
        # Nothing will be heard, but the page still shows the words: the subtitle goes out now.
        utterance = self._utterances.get(message_id)
        if utterance is not None:
            utterance.spoken.on_air(text, self.clock.now())
        self._notify(self.events.error, "tts_failed", f"Could not speak {text[:60]!r}: {error}")
        self._notify(self.events.subtitle, text.strip(), message_id)

    # --- ConversationHost (called by the conversation on the event loop) --------------------------------------

    def refresh_state(self) -> None:
        if self._speaking:
            self._set_state(SpeakingState.SPEAKING)
        elif self.listening:
            self._set_state(SpeakingState.LISTENING)
        elif self._utterances or self.recognising:
            self._set_state(SpeakingState.THINKING)
        else:
            self._set_state(SpeakingState.IDLE)

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        return await self.events.start_turn(text, asr_ms)

    def notify_transcript(self, text: str, final: bool, message_id: int | None) -> None:
        self._notify(self.events.transcript, text, final, message_id)

    def notify_error(self, code: str, message: str) -> None:
        self._notify(self.events.error, code, message)

    # --- teardown --------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every task, close the peer connection and give the pool references back. Idempotent.

        Messages still queued or on air are reported as interrupted. May be
        called from one of the session's own tasks (an event handler): that
        task is left to finish by itself.
        """
        if self.closed:
            return
        self.closed = True
        now = self.clock.now()
        unfinished = list(self._utterances.items())
        self._utterances.clear()
        try:
            await self.owner.aclose()
            for message_id, utterance in unfinished:
                timings = utterance.timings(now, interrupted=True, durations=self.durations)
                await self._deliver(self.events.message_finished, message_id, timings)
            if self.conversation is not None:
                await self.conversation.aclose()
            self.audio_track.stop()
            self.video_track.stop()
            if self.peer is not None:
                try:
                    await asyncio.wait_for(self.peer.close(), PEER_CLOSE_TIMEOUT_S)
                except TimeoutError:
                    logger.warning("session %s: peer connection did not close in time", self.config.session_id)
        finally:
            self.timeline.clear()
            self.lease.release()

    # --- internals -------------------------------------------------------------------------------------------

    def _finish(self, message_id: int, utterance: _Utterance, now: float, *, interrupted: bool) -> None:
        timings = utterance.timings(now, interrupted=interrupted, durations=self.durations)
        if interrupted and self.conversation is not None:
            self.conversation.history.set_assistant(message_id, timings.text)  # only what the user heard
        self._notify(self.events.message_finished, message_id, timings)

    def _fps_changed(self, old: int, new: int, reason: str) -> None:
        level = logging.WARNING if new < old else logging.INFO
        logger.log(level, "session %s: video %d → %d fps (%s)", self.config.session_id, old, new, reason)
        self._notify(self.events.state_changed, self.state.value)  # the page's readout shows the new fps

    def _set_state(self, state: SpeakingState) -> None:
        if state is self.state:
            return
        self.state = state
        self.last_activity = self.clock.now()
        if state is not SpeakingState.SPEAKING:
            self.speaking_text = ""
        self._notify(self.events.state_changed, state.value)

    async def _end_when_idle(self, timeout_s: float) -> None:
        """A forgotten tab must not keep its place under the worker's session cap: end the session once it has
        been idle (no speech, no answer) for ``timeout_s``."""
        while True:
            remaining = self.last_activity + timeout_s - self.clock.now()
            if remaining <= 0 and self.state is SpeakingState.IDLE:
                self._notify(self.events.ended, "idle")
                return
            await asyncio.sleep(max(remaining, 0.05))

    def _notify(self, handler: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Queue an event for the owner: delivered in order by one task, so a slow handler never stalls the media."""
        if not self.closed:
            self._outbox.put_nowait(functools.partial(handler, *args))

    async def _forward_events(self) -> None:
        while not self.closed:
            event = await self._outbox.get()
            await self._deliver(event)

    @staticmethod
    async def _deliver(handler: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await handler(*args)
        except Exception:
            logger.exception("session event handler failed")

    def _connection_state_changed(self) -> None:
        if self.peer is None:
            return
        if self.peer.connectionState == "connected" and not self.media_started:
            self.media_started = True
            self._notify(self.events.media_started)
        elif self.peer.connectionState == "failed":
            self._notify(self.events.ended, "ice_failed")

    def _remote_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.conversation is not None:
            self.conversation.listen(track)
            return
        # Nobody listens, but the frames must be read: aiortc queues them unbounded.
        self.owner.spawn(_drain(track), name=f"session.remote_{track.kind}")

    def _task_failed(self, name: str, error: BaseException) -> None:
        self._notify(self.events.error, "internal_error", f"{name} stopped: {error}")
        self._notify(self.events.ended, "error")


async def _drain(track: MediaStreamTrack) -> None:
    with suppress(MediaStreamError):
        while True:
            await track.recv()
