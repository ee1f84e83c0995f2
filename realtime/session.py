"""LiveSession: one chat session's media on the process that owns it. It wires the parts, each with one job:
the ``Peer`` (signaling and the peer connection), the ``SpeechPipeline`` (text → audio → frames on the clock),
the ``MessageLedger`` (what was said and when), the ``Speaking`` state machine, and the ``Conversation`` (voice
turns and LLM answers), which tells it what happened rather than setting its fields.

It knows nothing of Django or WebSockets: the owner builds it from a
``SessionConfig`` and hears from it through ``SessionEvents``, delivered in
order by one task so a slow handler never stalls the media.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, Protocol

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .clock import SessionClock
from .config import SessionConfig
from .conversation import Conversation, TalkMode, TurnRows
from .conversation.spoken import MeasuredTTS
from .degrade import DegradeGovernor, Level, ladder_for
from .frame_size import FrameSize, ShownSize
from .ledger import MessageLedger, MessageTimings, MessageWriter
from .metrics import DEGRADE_STEPS, INTERRUPT_SILENCE, INTERRUPTS, FpsMeter, observe_answer
from .net.outbound import OutboundPolicy
from .peer import Peer
from .pipeline import SpeechPipeline, TaskOwner
from .pipeline.render import Renderer
from .pool import Lease, ModelPool
from .rtmp import RtmpPublisher, RtmpSettings, RtmpStatus
from .speaking import Speaking, SpeakingState
from .timeline import FrameRate, PlayoutTimeline
from .tracks import AvatarAudioTrack, AvatarVideoTrack

logger = logging.getLogger(__name__)


class SessionEvents(Protocol):
    """What a live session tells its owner, in the order it happened."""

    async def state_changed(self, state: str) -> None: ...

    async def subtitle(self, text: str, message_id: int) -> None: ...

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None: ...

    async def error(self, code: str, message: str) -> None: ...

    async def ended(self, reason: str) -> None:
        """The session cannot go on (``ice_failed``, ``error``, ``idle``); the owner should close it."""

    async def media_started(self) -> None:
        """The peer connection is up: the page hears and sees the avatar from now on (the time to greet)."""

    async def transcript(self, text: str, final: bool, message_id: int | None) -> None:
        """The user's words: partial while they speak, then final (with the stored Message's id)."""

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        """Store the user's Message and an empty assistant Message for the answer; called directly (not queued)."""


class LiveSession:
    """Media, speech pipeline and state of one session. Create with ``open``; ``close`` frees everything."""

    def __init__(self, config: SessionConfig, lease: Lease, events: SessionEvents) -> None:
        self.config = config
        self.lease = lease
        self.events = events
        self.clock = SessionClock()
        self.timeline = PlayoutTimeline()
        self.rate = FrameRate(config.fps)  # lowered and raised again by the governor under load
        self.governor = DegradeGovernor(
            config.fps, config.lipsync_engine, config.degrade, now=self.clock.now, on_change=self._level_changed
        )
        self._renderers: dict[str, Renderer] = {"": lease.render}  # by engine name; "": the role's own
        self.owner = TaskOwner(on_error=self._task_failed)
        self.ledger = MessageLedger(self.clock)
        self.speaking = Speaking(
            now=self.clock.now,
            pending=lambda: self.ledger.busy,
            on_change=lambda state: self._notify(self.events.state_changed, state.value),
        )
        self._interrupted_at: float | None = None  # session-clock time the interrupt being carried out arrived
        self.audio_track = AvatarAudioTrack(self.clock, self.timeline, on_cut_heard=self._cut_heard)
        self.fps_meter = FpsMeter(target=lambda: self.config.fps)
        self.video_track = AvatarVideoTrack(
            self.clock,
            self.timeline,
            lease.avatar,
            self.rate,
            on_skipped=self.governor.late,
            on_sent=self.fps_meter.frame_sent,
        )
        self.peer = Peer(
            ice_servers=config.ice_servers,
            ice_transport_policy=config.ice_transport_policy,
            tracks=(self.audio_track, self.video_track),
            on_track=self._remote_track,
            on_connected=lambda: self._notify(self.events.media_started),
            on_failed=lambda: self._notify(self.events.ended, "ice_failed"),
        )
        self.rtmp: RtmpPublisher | None = None
        self.shown_size: ShownSize | None = None  # the page's video element; None until it says (API clients)
        self._relay: MediaRelay | None = None
        self.pipeline = SpeechPipeline(
            owner=self.owner,
            clock=self.clock,
            timeline=self.timeline,
            rate=self.rate,
            avatar=lease.avatar,
            tts=MeasuredTTS(lease.tts, self.ledger.durations),
            render=lease.render,
            listener=self,
            settings=config.playout,
            load=self.governor,
        )
        self.closed = False
        self.conversation: Conversation | None = None  # voice turns and LLM answers, when the config has them
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
            session._renderers = await _renderers(lease, session.governor.levels)
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

    @property
    def state(self) -> SpeakingState:
        return self.speaking.state

    @property
    def media_started(self) -> bool:
        return self.peer.media_started

    # --- signaling -------------------------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        """Answer the page's offer (see ``Peer.accept_offer``); raises ``SessionError``."""
        return await self.peer.accept_offer(sdp)

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        await self.peer.add_candidate(candidate, sdp_mid, sdp_mline_index)

    # --- speech ----------------------------------------------------------------------------------------------

    async def say(self, text: str, message_id: int, *, interrupt: bool = False) -> None:
        """Speak ``text`` after what is queued, or instead of it with ``interrupt``. Raises ``PipelineFull``."""
        if interrupt:
            await self.interrupt()
        self.ledger.open(message_id, started_at=self.clock.now())
        try:
            self.pipeline.say(text, message_id)
        except Exception:
            self.ledger.discard(message_id)
            raise
        self.ledger.queued(message_id, text)
        if self.conversation is not None:
            self.conversation.history.set_assistant(message_id, text.strip())
        self.speaking.refresh()

    def open_message(self, message_id: int, *, started_at: float, asr_ms: int | None = None) -> MessageWriter:
        """Start a message whose text streams in (an LLM answer), timed from ``started_at`` (session clock)."""
        self.ledger.open(message_id, started_at=started_at, asr_ms=asr_ms)
        self.speaking.refresh()
        return self.ledger.writer(message_id, self.pipeline.open_message(message_id))

    async def interrupt(self) -> None:
        """Stop the answers being written, cut every queued and playing message; the next audio packet fades to
        silence within its first 5 ms.

        The time from here to the end of speech in what the audio track hands to aiortc goes to
        ``livehuman_interrupt_silence_seconds``."""
        self._interrupted_at = self.clock.now()
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
        try:
            renderers = await _renderers(lease, ladder_for(config.fps, config.lipsync_engine, self.governor.policy))
        except BaseException:
            lease.release()
            raise
        old, self.lease, self.config = self.lease, lease, config
        self.video_track.avatar = lease.avatar
        tts = MeasuredTTS(lease.tts, self.ledger.durations)
        await self._cut(avatar=lease.avatar, tts=tts, render=lease.render)
        old.release()
        self._renderers = renderers
        self.governor.reset(config.fps, config.lipsync_engine)
        self._apply(self.governor.level)  # the new role's own video, whatever the old one was degraded to
        if self.conversation is not None and config.conversation is not None:
            await self.conversation.use_settings(config.conversation)
        self._notify(self.events.state_changed, self.state.value)  # with the new role's fps
        logger.info("session %s: now role %s (%d fps)", config.session_id, config.role_name, config.fps)

    async def reconfigure(self, config: SessionConfig) -> list[str]:
        """The same role, saved with new settings, while it talks; returns what changed.

        A new avatar, lip-sync engine or fps is an in-place switch (``switch_role``: what is being said is cut).
        Otherwise nothing is cut: a new voice speaks from the next sentence, a new prompt or LLM setting answers
        from the next turn.
        """
        old = self.config
        if (config.avatar_path, config.lipsync_engine, config.fps) != (old.avatar_path, old.lipsync_engine, old.fps):
            await self.switch_role(config)
            return ["avatar"]
        changed = []
        if (config.tts_engine, config.voice) != (old.tts_engine, old.voice):
            await self.lease.pool.change_voice(self.lease, tts_engine=config.tts_engine, voice=config.voice)
            self.pipeline.speech.tts = MeasuredTTS(self.lease.tts, self.ledger.durations)  # read once per sentence
            changed.append("voice")
        if config.conversation != old.conversation and self.conversation is not None and config.conversation:
            await self.conversation.use_settings(config.conversation)
            changed.append("prompt")
        self.config = config
        if changed:
            logger.info("session %s: role %s updated (%s)", config.session_id, config.role_name, ", ".join(changed))
        return changed

    async def _cut(self, **swap: Any) -> None:
        """Interrupt; ``swap`` (avatar, tts, render) goes into the pipeline while its stages are stopped."""
        self.pipeline.silence()  # first, before anything awaits
        if self.conversation is not None:
            await self.conversation.cancel_answers()
        cut = self.ledger.cut()  # first: a cue firing while the stages stop now finds nothing
        if cut and not swap:
            INTERRUPTS.inc()
        await self.pipeline.restart(**swap)
        for message_id, timings in cut:
            self._finished(message_id, timings)
        self.speaking.cut()

    def set_talk_mode(self, mode: TalkMode) -> None:
        """The page's ``mode``: push-to-talk or hands-free."""
        if self.conversation is not None:
            self.conversation.set_mode(mode)

    def set_talking(self, on: bool) -> None:
        """The page's push-to-talk button went down (``on``) or up."""
        if self.conversation is not None:
            self.conversation.set_talking(on)

    def set_shown_size(self, shown: ShownSize) -> None:
        """The page shows the video in an element this big (device pixels): send frames no larger."""
        self.shown_size = shown
        self._size_frames()

    def snapshot(self) -> dict[str, Any]:
        """The wire form of ``GET sessions/<id>/state`` (DESIGN.md §7), with the RTMP stream's status and the
        degradation level."""
        return {
            "state": self.state.value,
            "role": self.config.role_id,
            "fps": self.rate.fps,
            "speaking_text": self.speaking.speaking_text,
            "rtmp": self.rtmp.status.as_dict() if self.rtmp is not None else None,
            "degrade": self.degrade_state(),
        }

    def degrade_state(self) -> dict[str, Any]:
        """Where the session is on its degradation ladder: ``level`` 0 is the role's own video, ``levels`` − 1 the
        cheapest; ``step`` is what the current level changed (top, fps, resolution, engine)."""
        level = self.governor.level
        return {
            "level": self.governor.index,
            "levels": len(self.governor.levels),
            "step": level.step.value,
            "fps": level.fps,
            "half_size": level.half_size,
            "lipsync_engine": level.lipsync_engine or self.config.lipsync_engine,
        }

    # --- RTMP push ------------------------------------------------------------------------------------------

    async def start_rtmp(self, url: str, policy: OutboundPolicy, settings: RtmpSettings | None = None) -> RtmpStatus:
        """Also stream the avatar to ``url`` (replacing a stream already running); the browser keeps its call."""
        await self.stop_rtmp()
        relay = self._relayed()
        self.rtmp = RtmpPublisher(
            url,
            relay.subscribe(self.audio_track),
            relay.subscribe(self.video_track),
            fps=lambda: self.rate.fps,
            policy=policy,
            settings=settings,
            on_status=self._rtmp_status,
            size=lambda: (self.lease.avatar.manifest.width, self.lease.avatar.manifest.height),
        )
        self._size_frames()  # the stream needs the whole picture: no shown size while it runs
        await self.rtmp.start()
        return self.rtmp.status

    async def stop_rtmp(self) -> None:
        publisher, self.rtmp = self.rtmp, None
        if publisher is not None:
            await publisher.stop()
            self._size_frames()

    def _relayed(self) -> MediaRelay:
        """From the first stream on, the tracks are read once by a relay and fanned out to the peer and the
        publisher: both get every frame, with the same timestamps."""
        if self._relay is None:
            self._relay = MediaRelay()
            self.peer.use_tracks((self._relay.subscribe(self.audio_track), self._relay.subscribe(self.video_track)))
        return self._relay

    def _rtmp_status(self, status: RtmpStatus) -> None:
        level = logging.WARNING if status.state == "retrying" else logging.INFO
        logger.log(level, "rtmp %s: %s %s", status.url, status.state, status.last_error)

    # --- PipelineListener (called on the event loop by the pipeline) ------------------------------------------

    def audio_started(self, message_id: int) -> None:
        self.ledger.audio_started(message_id)

    def sentence_on_air(self, message_id: int, text: str) -> None:
        if self.ledger.on_air(message_id, text):
            self.speaking.sentence_on_air(text)
            self._notify(self.events.subtitle, self.speaking.speaking_text, message_id)

    def message_played(self, message_id: int) -> None:
        timings = self.ledger.played(message_id)
        if timings is not None:
            self._finished(message_id, timings)
            self.speaking.message_played()

    def sentence_failed(self, message_id: int, text: str, error: Exception) -> None:
        # Nothing will be heard, but the page still shows the words: the subtitle goes out now.
        self.ledger.shown(message_id, text)
        self._notify(self.events.error, "tts_failed", f"Could not speak {text[:60]!r}: {error}")
        self._notify(self.events.subtitle, text.strip(), message_id)

    # --- ConversationHost (called by the conversation on the event loop) --------------------------------------

    def busy(self) -> bool:
        """The avatar is speaking, or a message is on its way to the air."""
        return self.ledger.busy

    def speech_started(self) -> None:
        self.speaking.speech_started()

    def turn_ended(self) -> None:
        self.speaking.turn_ended()

    def turn_recognised(self) -> None:
        self.speaking.turn_recognised()

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
        unfinished = self.ledger.cut()
        try:
            await self.owner.aclose()
            for message_id, timings in unfinished:
                await self._deliver(self.events.message_finished, message_id, timings)
            if self.conversation is not None:
                await self.conversation.aclose()
            await self.stop_rtmp()
            self.audio_track.stop()
            self.video_track.stop()
            await self.peer.close()
        finally:
            self.timeline.clear()
            self.lease.release()

    # --- internals -------------------------------------------------------------------------------------------

    def _finished(self, message_id: int, timings: MessageTimings) -> None:
        observe_answer(timings)
        if timings.interrupted and self.conversation is not None:
            self.conversation.history.set_assistant(message_id, timings.text)  # only what the user heard
        self._notify(self.events.message_finished, message_id, timings)

    def _cut_heard(self, silent_at: float) -> None:
        """The audio track handed over the first packet after a cut: an interrupt's time to silence, if one cut."""
        if self._interrupted_at is not None:
            INTERRUPT_SILENCE.observe(max(0.0, silent_at - self._interrupted_at))
            self._interrupted_at = None

    def _level_changed(self, old: Level, new: Level, reason: str) -> None:
        """The governor moved: make the video what the new level says, and tell the logs, metrics and page."""
        self._apply(new)
        down = self.governor.levels.index(new) > self.governor.levels.index(old)
        step = new.step if down else old.step
        DEGRADE_STEPS.labels("down" if down else "up", step.value).inc()
        logger.log(
            logging.WARNING if down else logging.INFO,
            "session %s: quality %s (%s): video %s → %s (%s)",
            self.config.session_id,
            "down" if down else "up",
            step.value,
            _described(old),
            _described(new),
            reason,
        )
        self._notify(self.events.state_changed, self.state.value)  # the page shows the new fps and level

    def _apply(self, level: Level) -> None:
        """The fps (the player, features and video track follow the shared rate), the lip-sync engine the render
        stage calls from its next batch, and the frame size the video track sends."""
        self.rate.fps = level.fps
        self.pipeline.render.render = self._renderers[level.lipsync_engine]
        self._size_frames()

    def _size_frames(self) -> None:
        """What bounds the frames sent: the ladder's half size, and the page's shown size unless an RTMP stream
        (which shares the track, and whose viewers' screens nobody knows) needs the whole picture."""
        shown = None if self.rtmp is not None else self.shown_size
        self.video_track.size = FrameSize(shown=shown, half=self.governor.level.half_size)

    async def _end_when_idle(self, timeout_s: float) -> None:
        """A forgotten tab must not keep its place under the worker's session cap: end the session once it has
        been idle (no speech, no answer) for ``timeout_s``."""
        while True:
            remaining = self.speaking.last_activity + timeout_s - self.clock.now()
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

    def _remote_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.conversation is not None:
            self.conversation.listen(track)
            return
        # Nobody listens, but the frames must be read: aiortc queues them unbounded.
        self.owner.spawn(_drain(track), name=f"session.remote_{track.kind}")

    def _task_failed(self, name: str, error: BaseException) -> None:
        self._notify(self.events.error, "internal_error", f"{name} stopped: {error}")
        self._notify(self.events.ended, "error")


async def _renderers(lease: Lease, levels: tuple[Level, ...]) -> dict[str, Renderer]:
    """The session's renderers by engine name ("": the role's own), loading the lighter engine its ladder may
    step down to now, so the step itself is instant."""
    renderers: dict[str, Renderer] = {"": lease.render}
    for level in levels:
        if level.lipsync_engine and level.lipsync_engine not in renderers:
            renderers[level.lipsync_engine] = await lease.renderer(level.lipsync_engine)
    return renderers


def _described(level: Level) -> str:
    """``20 fps, half size, default lip-sync``: a level as the log line names it."""
    parts = [f"{level.fps} fps"]
    if level.half_size:
        parts.append("half size")
    if level.lipsync_engine:
        parts.append(f"{level.lipsync_engine} lip-sync")
    return ", ".join(parts)


async def _drain(track: MediaStreamTrack) -> None:
    with suppress(MediaStreamError):
        while True:
            await track.recv()
