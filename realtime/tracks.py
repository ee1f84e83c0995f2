"""The avatar's aiortc tracks: 48 kHz / 20 ms audio and video at the role's fps, both timed by the session clock.

A track owns its pacing: ``recv`` sleeps until its next slot on the session
clock, takes what the player scheduled there, and stamps ``pts`` from the slot
(audio: 48 kHz units, video: the 90 kHz RTP clock). With nothing scheduled the
audio track sends silence and the video track the avatar's own ping-pong loop,
so the picture never freezes (DESIGN.md §3, §4).

When the sender falls behind (a slow encoder), the tracks skip the slots that
are already past instead of sending them late: latency stays put and the
stream degrades to fewer frames.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from avatars_app.bundle.reader import AvatarBundle
from realtime.audio import OUTPUT_RATE

from .clock import SessionClock
from .timeline import PACKET_SAMPLES, PACKET_SECONDS, PACKETS_PER_SECOND, PlayoutTimeline, avatar_frame_at

VIDEO_CLOCK_RATE = 90_000  # RTP clock of every video codec
AUDIO_TIME_BASE = fractions.Fraction(1, OUTPUT_RATE)
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
MAX_AUDIO_LAG_PACKETS = 5  # 100 ms: beyond this late, skip ahead rather than grow the delay


class AvatarAudioTrack(MediaStreamTrack):
    """Speech scheduled on the timeline, else silence; one 20 ms mono s16 frame per ``recv``."""

    kind = "audio"

    def __init__(self, clock: SessionClock, timeline: PlayoutTimeline) -> None:
        super().__init__()
        self._clock = clock
        self._timeline = timeline
        self._next_packet: int | None = None
        self._silence = np.zeros(PACKET_SAMPLES, np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        packet = self._advance()
        await self._clock.sleep_until(packet * PACKET_SECONDS)
        samples = self._timeline.take_audio(packet)
        frame = av.AudioFrame.from_ndarray(
            (self._silence if samples is None else samples).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = OUTPUT_RATE
        frame.pts = packet * PACKET_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        return frame

    def _advance(self) -> int:
        current = self._clock.tick(PACKETS_PER_SECOND)
        if self._next_packet is None:
            self._next_packet = self._clock.next_tick(PACKETS_PER_SECOND)
        elif self._next_packet < current - MAX_AUDIO_LAG_PACKETS:
            self._next_packet = current
        packet = self._next_packet
        self._next_packet += 1
        return packet


class AvatarVideoTrack(MediaStreamTrack):
    """The frame scheduled for each tick, else the avatar's idle frame for that tick."""

    kind = "video"

    def __init__(self, clock: SessionClock, timeline: PlayoutTimeline, avatar: AvatarBundle) -> None:
        super().__init__()
        self._clock = clock
        self._timeline = timeline
        self._avatar = avatar
        self.fps = timeline.fps
        self._next_tick: int | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        tick = self._advance()
        await self._clock.sleep_until(tick / self.fps)
        rgb = self._timeline.take_video(tick)
        if rgb is None:
            rgb = self._avatar.frames[avatar_frame_at(self._avatar, tick, self.fps)]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = tick * VIDEO_CLOCK_RATE // self.fps
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def _advance(self) -> int:
        # A frame whose slot has passed is never sent late: the sender gets the current one.
        current = self._clock.tick(self.fps)
        tick = self._clock.next_tick(self.fps) if self._next_tick is None else max(self._next_tick, current)
        self._next_tick = tick + 1
        return tick
