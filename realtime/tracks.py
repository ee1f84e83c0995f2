"""The avatar's aiortc tracks: 48 kHz / 20 ms audio and video at the session's fps, both timed by the session clock.

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
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.audio import OUTPUT_RATE
from realtime.avatar.reader import AvatarBundle

from .clock import SessionClock
from .frame_size import FrameSize
from .media_codecs import I420Frames, resized
from .timeline import (
    PACKET_SAMPLES,
    PACKET_SECONDS,
    PACKETS_PER_SECOND,
    FrameRate,
    PlayoutTimeline,
    avatar_frame_at,
)

VIDEO_CLOCK_RATE = 90_000  # RTP clock of every video codec
AUDIO_TIME_BASE = fractions.Fraction(1, OUTPUT_RATE)
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
MAX_AUDIO_LAG_PACKETS = 5  # 100 ms: beyond this late, skip ahead rather than grow the delay


class AvatarAudioTrack(MediaStreamTrack):
    """Speech scheduled on the timeline, else silence; one 20 ms mono s16 frame per ``recv``.

    ``on_cut_heard(t)`` hears, for the first packet handed over after each cut of the timeline, the session-clock
    time its sound ends: when it is handed over, plus whatever it still carries (a fade-out), so an interrupt's
    time to silence is measured where aiortc takes the audio.
    """

    kind = "audio"

    def __init__(
        self,
        clock: SessionClock,
        timeline: PlayoutTimeline,
        on_cut_heard: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._timeline = timeline
        self.on_cut_heard = on_cut_heard
        self._next_packet: int | None = None
        self._silence = np.zeros(PACKET_SAMPLES, np.int16)
        self._cuts_heard = timeline.cuts

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        packet = self._advance()
        await self._clock.sleep_until(packet * PACKET_SECONDS)
        samples = self._timeline.take_audio(packet)
        if self._timeline.cuts != self._cuts_heard:
            self._cuts_heard = self._timeline.cuts
            if self.on_cut_heard is not None:
                self.on_cut_heard(self._clock.now() + sound_length(samples) / OUTPUT_RATE)
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


def sound_length(samples: np.ndarray | None) -> int:
    """Samples up to the last one that is not zero: where a packet's sound ends (0 for silence)."""
    if samples is None:
        return 0
    sounding = np.flatnonzero(samples)
    return int(sounding[-1]) + 1 if len(sounding) else 0


class AvatarVideoTrack(MediaStreamTrack):
    """The frame scheduled for each slot, else the avatar's idle frame for that slot.

    Slots follow the session's current ``FrameRate``: while speech frames are
    on the timeline each slot starts where the previous frame ended (so frames
    made at any fps are shown whole, at their own time), and while idle the slots
    sit on the current fps's grid. ``on_skipped(frames, fps)`` hears of slots
    the sender was too late to send (the degradation governor listens); ``on_sent(t)`` hears of each frame
    sent, with its time on the session clock (the fps metrics). Every frame leaves at the size ``size`` gives
    it (the page's shown size, the ladder's half size: ``realtime.frame_size``); the encoder reopens at each new
    size, and the page's video element, sized by CSS, scales the picture to fit.
    """

    kind = "video"

    def __init__(
        self,
        clock: SessionClock,
        timeline: PlayoutTimeline,
        avatar: AvatarBundle,
        rate: FrameRate,
        on_skipped: Callable[[int, int], None] | None = None,
        on_sent: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._timeline = timeline
        self.avatar = avatar  # swapped in place on a role switch
        self.rate = rate
        self.on_skipped = on_skipped
        self.on_sent = on_sent
        self.size = FrameSize()  # set by the session: what bounds the frames' size
        self._next: int | None = None  # position (48 kHz samples) of the next slot

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        at = self._slot()
        await self._clock.sleep_until(at / OUTPUT_RATE)
        scheduled = self._timeline.take_video(at)
        if scheduled is not None:
            height, width = scheduled.video.shape[:2]
            picture = resized(scheduled.video, self.size.for_picture(width, height))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            self._next = scheduled.end
        else:
            # Idle pictures are the same for every session of the avatar: converted for the encoder once.
            idle = I420Frames.of(self.avatar, self.avatar.frames)
            size = self.size.for_picture(self.avatar.manifest.width, self.avatar.manifest.height)
            frame = idle.frame(avatar_frame_at(self.avatar, at), size)
            self._next = self._idle_after(at)
        frame.pts = at * VIDEO_CLOCK_RATE // OUTPUT_RATE
        frame.time_base = VIDEO_TIME_BASE
        if self.on_sent is not None:
            self.on_sent(at / OUTPUT_RATE)
        return frame

    def _slot(self) -> int:
        step = self.rate.frame_samples
        if self._next is None:
            return self._clock.next_tick(self.rate.fps) * step
        now = self._clock.tick(OUTPUT_RATE)
        if self._next + step <= now:
            # That slot is over: never send a frame late; send what is on screen now.
            if self.on_skipped is not None:
                self.on_skipped((now - self._next) // step, self.rate.fps)
            return now
        return self._next

    def _idle_after(self, at: int) -> int:
        """The next slot on the current fps's grid, or the start of the next speech frame if that comes first."""
        step = self.rate.frame_samples
        grid = (at // step + 1) * step
        upcoming = self._timeline.next_start(at)
        return grid if upcoming is None else min(grid, upcoming)
