"""What goes on air next: the meeting point of the player (writes) and the two tracks (take).

Positions are 48 kHz sample counts on the session clock (sample ``s`` is at
``s / 48 000`` s), so frames made at different fps — before and after the
session degrades, or a role with another fps — sit on one time line. A video
frame covers ``[start, start + its audio length)``; audio is kept by 20 ms
packet (packet ``n`` at ``n · 20 ms``). The player writes a frame and its audio
from the same position, so whichever track takes them, they leave stamped with
the same instant. Whatever is still here has not been sent: an interrupt clears
it, and the next packet is silence — or, when speech was being sent, that speech
faded out over its first 5 ms, since a step from speech to zero clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.audio import OUTPUT_RATE
from realtime.avatar.reader import AvatarBundle

PACKET_SECONDS = 0.02  # opus frame size in WebRTC
PACKETS_PER_SECOND = 50
PACKET_SAMPLES = int(OUTPUT_RATE * PACKET_SECONDS)  # 960 at 48 kHz
FADE_SAMPLES = OUTPUT_RATE // 200  # 5 ms: long enough that a cut does not click, short against the 20 ms packet
# Half a raised cosine, from just under 1 to just over 0: no step at either end.
FADE_OUT = 0.5 * (1 + np.cos(np.pi * np.arange(1, FADE_SAMPLES + 1) / (FADE_SAMPLES + 1)))


def samples_per_frame(fps: int) -> int:
    """48 kHz samples one video frame covers; refuses an fps that does not divide 48 000 evenly."""
    if fps <= 0 or OUTPUT_RATE % fps:
        raise ValueError(f"fps must divide {OUTPUT_RATE} evenly so every frame has whole samples; got {fps}")
    return OUTPUT_RATE // fps


def avatar_frame_at(avatar: AvatarBundle, at: int) -> int:
    """The avatar frame shown at position ``at``: its own ping-pong loop at its own fps, whatever the output fps."""
    return avatar.pingpong_index(at * avatar.fps // OUTPUT_RATE)


class FrameRate:
    """A session's current video fps: the degradation governor moves it, the video track and the player's
    slot grid follow at once, and the features stage picks it up at each new sentence."""

    def __init__(self, fps: int) -> None:
        self.fps = fps

    @property
    def frame_samples(self) -> int:
        return samples_per_frame(self.fps)


@dataclass(frozen=True)
class ScheduledFrame:
    """A video frame on the time line: on screen from ``start`` until ``end`` (48 kHz samples)."""

    start: int
    end: int
    video: np.ndarray


class PlayoutTimeline:
    """Frames by start position and 48 kHz int16 audio by packet, for the next few frames only."""

    def __init__(self) -> None:
        self._video: dict[int, ScheduledFrame] = {}
        self._audio: dict[int, np.ndarray] = {}
        self.cuts = 0  # how many times ``clear`` ran: the audio track notes the first packet it takes after one
        self._sent_speech: int | None = None  # the packet taken last, if it carried speech: a cut fades the next
        self._fading: int | None = None  # the packet a cut faded out (a second clear keeps it as it is)

    def put(self, at: int, video: np.ndarray, audio: np.ndarray) -> None:
        """Schedule ``video`` from ``at`` for as long as its ``audio`` (1/fps s of 48 kHz samples) lasts."""
        if not len(audio):
            raise ValueError("a frame needs its audio: its length is the frame's duration")
        self._video[at] = ScheduledFrame(at, at + len(audio), video)
        written = 0
        while written < len(audio):
            packet, offset = divmod(at + written, PACKET_SAMPLES)
            count = min(PACKET_SAMPLES - offset, len(audio) - written)
            buffer = self._audio.get(packet)
            if buffer is None:
                buffer = self._audio[packet] = np.zeros(PACKET_SAMPLES, np.int16)
            buffer[offset : offset + count] = audio[written : written + count]
            written += count

    def take_video(self, at: int) -> ScheduledFrame | None:
        """The frame on screen at ``at``, if one is scheduled there; frames that ended by ``at`` are dropped."""
        self._drop_video_before(at)
        covering = [frame for frame in self._video.values() if frame.start <= at]
        if not covering:
            return None
        frame = max(covering, key=lambda f: f.start)
        del self._video[frame.start]
        return frame

    def next_start(self, after: int) -> int | None:
        """Where the first frame scheduled after ``after`` starts (the idle loop must not step over it)."""
        return min((start for start in self._video if start > after), default=None)

    def take_audio(self, packet: int) -> np.ndarray | None:
        """Packet ``packet``'s 960 samples, if anything was scheduled in it; earlier packets are dropped."""
        for stale in [key for key in self._audio if key < packet]:
            del self._audio[stale]
        samples = self._audio.pop(packet, None)
        self._sent_speech = packet if samples is not None and packet != self._fading else None
        return samples

    def drop_past(self, at: int) -> None:
        """Forget what should have left before ``at``: bounds memory when no peer is taking anything yet."""
        self._drop_video_before(at)
        for stale in [key for key in self._audio if key < at // PACKET_SAMPLES]:
            del self._audio[stale]

    def clear(self) -> None:
        """Forget everything not yet sent (interrupt). When the packet taken last carried speech, the one after it
        keeps the first 5 ms of what was scheduled there, faded out to silence; a second clear leaves that as is."""
        if self._fading not in self._audio and self._sent_speech is not None:
            following = self._audio.get(self._sent_speech + 1)
            if following is not None:
                self._fading = self._sent_speech + 1
                faded = np.zeros(PACKET_SAMPLES, np.int16)
                faded[:FADE_SAMPLES] = following[:FADE_SAMPLES] * FADE_OUT
                self._audio[self._fading] = faded
        kept = {self._fading: self._audio[self._fading]} if self._fading in self._audio else {}
        self._video.clear()
        self._audio = kept
        self.cuts += 1

    def __len__(self) -> int:
        """Frames scheduled and not yet sent."""
        return len(self._video)

    def _drop_video_before(self, at: int) -> None:
        # The schedule holds a few entries (the player stays a few frames ahead), so a scan is cheap.
        for stale in [start for start, frame in self._video.items() if frame.end <= at]:
            del self._video[stale]
