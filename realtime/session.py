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
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from .clock import SessionClock
from .config import SessionConfig
from .pipeline import SpeechPipeline, TaskOwner
from .pool import Lease, ModelPool
from .timeline import PlayoutTimeline
from .tracks import AvatarAudioTrack, AvatarVideoTrack

logger = logging.getLogger(__name__)

PEER_CLOSE_TIMEOUT_S = 3.0  # a peer connection that will not close cleanly is abandoned: the session must end


class SpeakingState(StrEnum):
    IDLE = "idle"
    SPEAKING = "speaking"


@dataclass(frozen=True)
class MessageTimings:
    """Milliseconds from the ``say`` to each point on air; None when the message never got that far."""

    tts_first_audio_ms: int | None
    first_frame_ms: int | None
    total_ms: int
    interrupted: bool


class SessionEvents(Protocol):
    """What a live session tells its owner (the consumer), in the order it happened."""

    async def state_changed(self, state: str) -> None: ...

    async def subtitle(self, text: str, message_id: int) -> None: ...

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None: ...

    async def error(self, code: str, message: str) -> None: ...

    async def ended(self, reason: str) -> None:
        """The session cannot go on (``ice_failed``, ``error``); the owner should close it."""


class SessionError(Exception):
    """A request the session cannot honour in its current state; ``code`` goes to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Utterance:
    said_at: float
    first_audio_at: float | None = None
    first_frame_at: float | None = None

    def timings(self, now: float, *, interrupted: bool) -> MessageTimings:
        def ms(at: float | None) -> int | None:
            return None if at is None else max(0, round((at - self.said_at) * 1000))

        total = max(0, round((now - self.said_at) * 1000))
        return MessageTimings(ms(self.first_audio_at), ms(self.first_frame_at), total, interrupted)


class LiveSession:
    """Media, speech pipeline and state of one session. Create with ``open``; ``close`` frees everything."""

    def __init__(self, config: SessionConfig, lease: Lease, events: SessionEvents) -> None:
        self.config = config
        self.lease = lease
        self.events = events
        self.clock = SessionClock()
        self.timeline = PlayoutTimeline(config.fps)
        self.owner = TaskOwner(on_error=self._task_failed)
        self.audio_track = AvatarAudioTrack(self.clock, self.timeline)
        self.video_track = AvatarVideoTrack(self.clock, self.timeline, lease.avatar)
        self.pipeline = SpeechPipeline(
            owner=self.owner,
            clock=self.clock,
            timeline=self.timeline,
            avatar=lease.avatar,
            tts=lease.tts,
            render=lease.render,
            listener=self,
            settings=config.playout,
        )
        self.state = SpeakingState.IDLE
        self.speaking_text = ""
        self.peer: RTCPeerConnection | None = None
        self.closed = False
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
            session.pipeline.start()
        except BaseException:
            lease.release()
            raise
        return session

    # --- signaling -------------------------------------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        """Answer the page's offer: one audio and one video track out; a mic track in, when the page sends one."""
        if self.peer is not None:
            raise SessionError("already_connected", "This session already has a peer connection.")
        servers = [RTCIceServer(**server) for server in self.config.ice_servers]
        peer = self.peer = RTCPeerConnection(RTCConfiguration(iceServers=servers))
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
        self._utterances[message_id] = _Utterance(self.clock.now())
        try:
            self.pipeline.say(text, message_id)
        except Exception:
            del self._utterances[message_id]
            raise

    async def interrupt(self) -> None:
        """Cut every queued and playing message; the next audio packet is silence."""
        cut, self._utterances = self._utterances, {}  # a cue firing while the stages stop now finds nothing
        now = self.clock.now()
        await self.pipeline.interrupt()
        for message_id, utterance in cut.items():
            self._notify(self.events.message_finished, message_id, utterance.timings(now, interrupted=True))
        self._set_state(SpeakingState.IDLE)

    def snapshot(self) -> dict[str, Any]:
        """The wire form of ``GET sessions/<id>/state`` (DESIGN.md §7)."""
        return {
            "state": self.state.value,
            "role": self.config.role_id,
            "fps": self.config.fps,
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
        if utterance.first_frame_at is None:
            utterance.first_frame_at = self.clock.now()
        self.speaking_text = text.strip()  # the splitter leaves the space after a sentence on its chunk
        self._set_state(SpeakingState.SPEAKING)
        self._notify(self.events.subtitle, self.speaking_text, message_id)

    def message_played(self, message_id: int) -> None:
        utterance = self._utterances.pop(message_id, None)
        if utterance is None:
            return
        self._notify(self.events.message_finished, message_id, utterance.timings(self.clock.now(), interrupted=False))
        if not self._utterances:
            self._set_state(SpeakingState.IDLE)

    def sentence_failed(self, message_id: int, text: str, error: Exception) -> None:
        self._notify(self.events.error, "tts_failed", f"Could not speak {text[:60]!r}: {error}")

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
                await self._deliver(self.events.message_finished, message_id, utterance.timings(now, interrupted=True))
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

    def _set_state(self, state: SpeakingState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is SpeakingState.IDLE:
            self.speaking_text = ""
        self._notify(self.events.state_changed, state.value)

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
        if self.peer is not None and self.peer.connectionState == "failed":
            self._notify(self.events.ended, "ice_failed")

    def _remote_track(self, track: MediaStreamTrack) -> None:
        # Nothing listens to the mic yet (ASR comes later), but its frames must be read: aiortc queues them unbounded.
        self.owner.spawn(_drain(track), name=f"session.remote_{track.kind}")

    def _task_failed(self, name: str, error: BaseException) -> None:
        self._notify(self.events.error, "internal_error", f"{name} stopped: {error}")
        self._notify(self.events.ended, "error")


async def _drain(track: MediaStreamTrack) -> None:
    with suppress(MediaStreamError):
        while True:
            await track.recv()
