"""Features stage: 16 kHz speech in, one lip-sync job per video frame out (DESIGN.md §4).

Each sentence is cut into frames of 1/fps s. Frame ``i`` gets the Wav2Lip mel
window starting at column ``int(80 · i / fps)``, its 16 kHz samples for
engines that work from the waveform, and its 48 kHz samples for the audio
track. A frame is released as soon as its whole mel window is settled, so
frames flow while a streaming TTS engine is still speaking the sentence; at
the sentence's end the rest is released, padded with silence to a whole frame.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from avatars_app.bundle.reader import AvatarBundle
from realtime.audio import (
    HOP,
    MEL_COLUMNS_PER_SECOND,
    MEL_WINDOW,
    N_FFT,
    SAMPLE_RATE,
    mel_window,
    melspectrogram,
    to_48k,
    to_float32,
)
from realtime.engines.lipsync.base import LipSyncRequest
from realtime.frames import AudioChunk, FrameJob, MessageEnd, PipelineItem
from realtime.timeline import avatar_frame_at, samples_per_frame

from .stage import Generation, Stage

MIN_RELEASE_FRAMES = 4  # while a sentence streams in, recompute features only once this many frames are ready


@dataclass(frozen=True)
class _Features:
    length: int  # of the audio they were computed from
    mel: np.ndarray
    wave: np.ndarray  # 16 kHz float32
    audio_48k: np.ndarray  # int16


@dataclass
class _Sentence:
    text: str
    pieces: list[np.ndarray]
    length: int = 0
    released: int = 0  # frames already turned into jobs
    features: _Features | None = None


class FeatureStage(Stage):
    """Turns each sentence's audio into ``FrameJob``s, giving every frame the avatar frame it will be shown over.

    ``first_tick()`` says which clock tick a frame released now would play at
    (the player's rule); the avatar frame follows that tick's idle position, so
    speech continues the avatar's own motion instead of jumping.
    """

    name = "features"

    def __init__(
        self,
        generation: Generation,
        avatar: AvatarBundle,
        fps: int,
        *,
        maxsize: int,
        first_tick: Callable[[], int],
    ) -> None:
        super().__init__(generation, maxsize)
        self.avatar = avatar
        self.fps = fps
        self._first_tick = first_tick
        self._samples_48k = samples_per_frame(fps)
        self._sentence: _Sentence | None = None
        self._tick: int | None = None

    def clear(self) -> None:
        self._sentence = None
        self._tick = None

    async def process(self, item: PipelineItem) -> None:
        if isinstance(item, MessageEnd):
            await self.emit(item)
            return
        assert isinstance(item, AudioChunk)
        sentence = self._sentence
        if sentence is None:
            sentence = self._sentence = _Sentence(item.sentence, [])
        if len(item.samples):
            sentence.pieces.append(item.samples)
            sentence.length += len(item.samples)
        final = item.end_of_sentence
        ready = self._frame_count(sentence.length) if final else self._settled_frames(sentence.length)
        if final or ready - sentence.released >= MIN_RELEASE_FRAMES:
            await self._release(item, sentence, ready)
        if final:
            self._sentence = None

    async def _release(self, item: AudioChunk, sentence: _Sentence, ready: int) -> None:
        if ready <= sentence.released:
            return
        features = sentence.features
        if features is None or features.length != sentence.length:
            audio = np.concatenate(sentence.pieces)
            loop = asyncio.get_running_loop()
            features = sentence.features = await loop.run_in_executor(None, self._features, audio)
        for index in range(sentence.released, ready):
            await self.emit(self._job(item, sentence.text, features, index))
        sentence.released = ready

    def _job(self, item: AudioChunk, text: str, features: _Features, index: int) -> FrameJob:
        tick = self._next_tick()
        start, end = self._wave_span(index)
        request = LipSyncRequest(
            avatar=self.avatar,
            frame_index=avatar_frame_at(self.avatar, tick, self.fps),
            mel=mel_window(features.mel, index, self.fps),
            audio=features.wave[start:end],
        )
        audio = features.audio_48k[index * self._samples_48k : (index + 1) * self._samples_48k]
        return FrameJob(item.generation, item.message_id, request, audio, subtitle=text if index == 0 else None)

    def _next_tick(self) -> int:
        earliest = self._first_tick()
        self._tick = earliest if self._tick is None or self._tick < earliest else self._tick + 1
        return self._tick

    def _frame_count(self, length: int) -> int:
        return math.ceil(length * self.fps / SAMPLE_RATE)

    def _settled_frames(self, length: int) -> int:
        """Frames whose mel window no longer changes as audio arrives: frame f needs columns up to
        ``int(80 f / fps) + 15``, and column c is settled once its centred STFT window, up to sample
        ``200 c + 400``, has arrived."""
        last_start = (length - N_FFT // 2) // HOP - (MEL_WINDOW - 1)
        if last_start < 0:
            return 0
        return -(-(last_start + 1) * self.fps // MEL_COLUMNS_PER_SECOND)

    def _wave_span(self, index: int) -> tuple[int, int]:
        return round(index * SAMPLE_RATE / self.fps), round((index + 1) * SAMPLE_RATE / self.fps)

    def _features(self, audio: np.ndarray) -> _Features:
        """Mel, float waveform and 48 kHz audio of the sentence so far, padded with silence to whole frames."""
        frames = self._frame_count(len(audio))
        padded = np.zeros(max(len(audio), self._wave_span(frames)[0]), np.int16)
        padded[: len(audio)] = audio
        audio_48k = to_48k(padded)
        short = frames * self._samples_48k - len(audio_48k)
        if short > 0:  # 3 × the 16 kHz length can fall a sample short of whole 48 kHz frames (30 fps)
            audio_48k = np.pad(audio_48k, (0, short))
        return _Features(len(audio), melspectrogram(padded), to_float32(padded), audio_48k)
