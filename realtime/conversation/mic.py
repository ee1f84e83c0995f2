"""The browser's microphone as the conversation hears it: WebRTC audio frames → 16 kHz mono int16, 20 ms chunks.

aiortc decodes the page's opus to 48 kHz stereo s16 frames of 20 ms; libswresample
(through PyAV) turns them into 16 kHz mono with its filter state carried from
frame to frame, so frame edges do not click and the VAD and ASR see clean audio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.audio import SAMPLE_RATE

CHUNK_SAMPLES = SAMPLE_RATE // 50  # 20 ms: the pipeline's audio unit (DESIGN.md §4)


class MicResampler:
    """Any-rate, any-layout audio frames in; 16 kHz mono int16 chunks of exactly 20 ms out."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._pending = np.zeros(0, np.int16)

    def push(self, frame: av.AudioFrame) -> list[np.ndarray]:
        """The whole chunks completed by ``frame``; the remainder waits for the next frame."""
        converted = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)]
        samples = np.concatenate([self._pending, *converted])
        whole = len(samples) // CHUNK_SAMPLES * CHUNK_SAMPLES
        self._pending = samples[whole:]
        return [samples[start : start + CHUNK_SAMPLES] for start in range(0, whole, CHUNK_SAMPLES)]


async def mic_chunks(track: MediaStreamTrack) -> AsyncIterator[np.ndarray]:
    """The track's audio as 16 kHz 20 ms chunks, until the track ends (the peer hung up)."""
    resampler = MicResampler()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for chunk in resampler.push(frame):
            yield chunk
