"""What goes on air next: the meeting point of the player (writes) and the two tracks (take).

Video frames are keyed by their tick on the session clock (frame ``k`` is shown
at ``k / fps``) and audio by 20 ms packet (packet ``n`` at ``n · 20 ms``). The
player writes a frame and its audio under the same clock position, so whichever
track takes them, they leave stamped with the same instant. Whatever is still
here has not been sent: an interrupt clears it and the next packet is silence.
"""

from __future__ import annotations

import numpy as np

from avatars_app.bundle.reader import AvatarBundle
from realtime.audio import OUTPUT_RATE

PACKET_SECONDS = 0.02  # opus frame size in WebRTC
PACKETS_PER_SECOND = 50
PACKET_SAMPLES = int(OUTPUT_RATE * PACKET_SECONDS)  # 960 at 48 kHz


def samples_per_frame(fps: int) -> int:
    """48 kHz samples one video frame covers; refuses an fps that does not divide 48 000 evenly."""
    if fps <= 0 or OUTPUT_RATE % fps:
        raise ValueError(f"fps must divide {OUTPUT_RATE} evenly so every frame has whole samples; got {fps}")
    return OUTPUT_RATE // fps


def avatar_frame_at(avatar: AvatarBundle, tick: int, fps: int) -> int:
    """The avatar frame shown at ``tick``: its own ping-pong loop at its own fps, whatever the output fps."""
    return avatar.pingpong_index(tick * avatar.fps // fps)


class PlayoutTimeline:
    """Frames by tick and 48 kHz int16 audio by packet, for the next few frames only."""

    def __init__(self, fps: int) -> None:
        self.fps = fps
        self.samples_per_frame = samples_per_frame(fps)
        self._video: dict[int, np.ndarray] = {}
        self._audio: dict[int, np.ndarray] = {}

    def put(self, tick: int, video: np.ndarray, audio: np.ndarray) -> None:
        """Schedule ``video`` at ``tick`` and ``audio`` (exactly one frame's worth) from the same instant."""
        if len(audio) != self.samples_per_frame:
            raise ValueError(f"a frame's audio must be {self.samples_per_frame} samples, got {len(audio)}")
        self._video[tick] = video
        position = tick * self.samples_per_frame
        written = 0
        while written < len(audio):
            packet, offset = divmod(position + written, PACKET_SAMPLES)
            count = min(PACKET_SAMPLES - offset, len(audio) - written)
            buffer = self._audio.get(packet)
            if buffer is None:
                buffer = self._audio[packet] = np.zeros(PACKET_SAMPLES, np.int16)
            buffer[offset : offset + count] = audio[written : written + count]
            written += count

    def take_video(self, tick: int) -> np.ndarray | None:
        """The frame scheduled at ``tick``, if any; frames for earlier ticks are past and dropped."""
        _drop_before(self._video, tick)
        return self._video.pop(tick, None)

    def take_audio(self, packet: int) -> np.ndarray | None:
        """Packet ``packet``'s 960 samples, if anything was scheduled in it; earlier packets are dropped."""
        _drop_before(self._audio, packet)
        return self._audio.pop(packet, None)

    def drop_past(self, tick: int) -> None:
        """Forget what should have left before ``tick``: bounds memory when no peer is taking anything yet."""
        _drop_before(self._video, tick)
        _drop_before(self._audio, tick * self.samples_per_frame // PACKET_SAMPLES)

    def clear(self) -> None:
        """Forget everything not yet sent (interrupt)."""
        self._video.clear()
        self._audio.clear()

    def __len__(self) -> int:
        """Frames scheduled and not yet sent."""
        return len(self._video)


def _drop_before(schedule: dict[int, np.ndarray], index: int) -> None:
    # The schedule holds a few entries (the player stays a few frames ahead), so a scan is cheap.
    for stale in [key for key in schedule if key < index]:
        del schedule[stale]
