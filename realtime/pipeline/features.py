"""Features stage: 16 kHz speech in, one lip-sync job per video frame out (DESIGN.md §4).

Each sentence is cut into frames of 1/fps s at the session's current fps,
read afresh for every frame: when the session degrades (or recovers) the next
frame already has the new length, even inside a sentence. A frame is placed by
its position in the sentence in 48 kHz samples (``p``): it gets the Wav2Lip mel
window starting at column ``int(80 · p / 48 000)`` (``int(80 · i / fps)`` for
frame ``i`` at a constant fps), its 16 kHz samples for engines that work from
the waveform, and its 48 kHz samples for the audio track. A frame is released
as soon as its whole mel window is settled, so frames flow while a streaming
TTS engine is still speaking the sentence; at the sentence's end the rest is
released, padded with silence to a whole frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from realtime.audio import (
    HOP,
    MEL_WINDOW,
    N_FFT,
    OUTPUT_RATE,
    SAMPLE_RATE,
    mel_start,
    mel_window,
    melspectrogram,
    to_48k,
    to_float32,
)
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.base import LipSyncRequest
from realtime.frames import AudioChunk, FrameJob, MessageEnd, PipelineItem
from realtime.timeline import FrameRate, avatar_frame_at

from .stage import Generation, Stage

MIN_RELEASE_FRAMES = 4  # while a sentence streams in, recompute features only once this many frames are ready
UPSAMPLE = OUTPUT_RATE // SAMPLE_RATE  # 48 kHz samples per 16 kHz sample


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
    length: int = 0  # 16 kHz samples received
    released: int = 0  # 48 kHz samples of the sentence already turned into frames
    features: _Features | None = None


class FeatureStage(Stage):
    """Turns each sentence's audio into ``FrameJob``s, giving every frame the avatar frame it will be shown over.

    ``first_start()`` says at which position (48 kHz samples) a frame released
    now would play (the player's rule); the avatar frame follows that position's
    idle frame, so speech continues the avatar's own motion instead of jumping.
    """

    name = "features"

    def __init__(
        self,
        generation: Generation,
        avatar: AvatarBundle,
        rate: FrameRate,
        *,
        maxsize: int,
        first_start: Callable[[], int],
    ) -> None:
        super().__init__(generation, maxsize)
        self.avatar = avatar
        self.rate = rate
        self._first_start = first_start
        self._sentence: _Sentence | None = None
        self._after: int | None = None  # where the frame after the last one released would start

    def clear(self) -> None:
        self._sentence = None
        self._after = None

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
        if final or _ready_frames(sentence, self.rate.frame_samples) >= MIN_RELEASE_FRAMES:
            await self._release(item, sentence, final)
        if final:
            self._sentence = None

    async def _release(self, item: AudioChunk, sentence: _Sentence, final: bool) -> None:
        if not _is_ready(sentence, final):
            return
        features = sentence.features
        if features is None or features.length != sentence.length:
            audio = np.concatenate(sentence.pieces)
            loop = asyncio.get_running_loop()
            features = sentence.features = await loop.run_in_executor(None, _features, audio, self.rate.fps)
        # The rate is read for every frame: a change made while this sentence is released applies at once.
        while _is_ready(sentence, final):
            duration = self.rate.frame_samples
            job = self._job(item, sentence, features, duration)
            sentence.released += duration
            await self.emit(job)

    def _job(self, item: AudioChunk, sentence: _Sentence, features: _Features, duration: int) -> FrameJob:
        at = sentence.released
        request = LipSyncRequest(
            avatar=self.avatar,
            frame_index=avatar_frame_at(self.avatar, self._next_start(duration)),
            mel=mel_window(features.mel, at, OUTPUT_RATE),  # a position is the index of a 1/48 000 s "frame"
            audio=_span(features.wave, round(at / UPSAMPLE), round((at + duration) / UPSAMPLE)),
        )
        audio = _span(features.audio_48k, at, at + duration)
        subtitle = sentence.text if at == 0 else None
        return FrameJob(item.generation, item.message_id, request, audio, subtitle=subtitle)

    def _next_start(self, duration: int) -> int:
        earliest = self._first_start()
        start = earliest if self._after is None else max(self._after, earliest)
        self._after = start + duration
        return start


def _is_ready(sentence: _Sentence, final: bool) -> bool:
    """Can the frame at ``sentence.released`` be released now?"""
    if final:
        return sentence.released < sentence.length * UPSAMPLE
    return _settled(sentence.released, sentence.length)


def _ready_frames(sentence: _Sentence, duration: int) -> int:
    """How many frames of ``duration`` could be released now (while the sentence still streams in)."""
    count, at = 0, sentence.released
    while _settled(at, sentence.length):
        count, at = count + 1, at + duration
    return count


def _settled(at: int, length: int) -> bool:
    """Does the mel window of a frame starting at ``at`` (48 kHz) stay the same however much audio follows the
    ``length`` 16 kHz samples received? Its last column is ``int(80 · at / 48 000) + 15``, and column c is
    settled once its centred STFT window, up to 16 kHz sample ``200 c + 400``, has arrived."""
    last_start = (length - N_FFT // 2) // HOP - (MEL_WINDOW - 1)
    return last_start >= 0 and mel_start(at, OUTPUT_RATE) <= last_start


def _span(samples: np.ndarray, start: int, end: int) -> np.ndarray:
    """``samples[start:end]``, padded with silence where it runs past the end."""
    piece = samples[start:end]
    if len(piece) == end - start:
        return piece
    return np.pad(piece, (0, end - start - len(piece)))


def _features(audio: np.ndarray, fps: int) -> _Features:
    """Mel, float waveform and 48 kHz audio of the sentence so far, padded with silence to whole frames at ``fps``
    (frames of another fps are padded when they are cut, by ``_span``)."""
    frames = -(-len(audio) * fps // SAMPLE_RATE)
    padded = np.zeros(max(len(audio), round(frames * SAMPLE_RATE / fps)), np.int16)
    padded[: len(audio)] = audio
    audio_48k = to_48k(padded)
    return _Features(len(audio), melspectrogram(padded), to_float32(padded), audio_48k)
