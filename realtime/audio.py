"""Audio helpers shared by the pipeline and the engines: sample formats, resampling and the Wav2Lip mel.

Internal audio is 16 kHz mono (DESIGN.md §4); engines produce whatever rate
their model has and WebRTC wants 48 kHz, so everything converts here.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from math import gcd

import av
import numpy as np
from scipy.signal import get_window, lfilter, resample_poly

SAMPLE_RATE = 16_000
OUTPUT_RATE = 48_000  # opus in WebRTC

# Wav2Lip's audio front end (its published hparams): these numbers define the features the model was trained on.
MEL_BINS = 80
N_FFT = 800
HOP = 200  # 12.5 ms at 16 kHz: 80 mel columns a second
WIN = 800
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS_VALUE = 4.0  # normalised mels are symmetric in [-4, 4]
MEL_COLUMNS_PER_SECOND = SAMPLE_RATE // HOP
MEL_WINDOW = 16  # columns per video frame: 0.2 s of audio
MEL_SILENCE = -MAX_ABS_VALUE  # what a silent column normalises to


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 PCM → float32 in [-1, 1); float input is returned as float32."""
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] → int16 PCM, clipped; int16 input is returned unchanged."""
    if samples.dtype == np.int16:
        return samples
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def apply_gain(samples: np.ndarray, gain: float) -> np.ndarray:
    """Scale int16 PCM by ``gain`` with clipping (volume for engines that have no volume control)."""
    if gain == 1.0:
        return samples
    return np.clip(samples.astype(np.float32) * gain, -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a whole buffer (polyphase, anti-aliased). Keeps the dtype: int16 in, int16 out.

    A continuous stream cut into small chunks needs its filter state carried across chunks so their edges do not
    click: the mic's ``conversation.mic.MicResampler`` does that.
    """
    if from_rate == to_rate or len(samples) == 0:
        return samples.copy()
    divisor = gcd(from_rate, to_rate)
    out = resample_poly(to_float32(samples), to_rate // divisor, from_rate // divisor)
    return to_int16(out) if samples.dtype == np.int16 else out.astype(np.float32)


def to_16k(samples: np.ndarray, from_rate: int) -> np.ndarray:
    """Any rate → the internal 16 kHz."""
    return resample(samples, from_rate, SAMPLE_RATE)


def to_48k(samples: np.ndarray) -> np.ndarray:
    """Internal 16 kHz → 48 kHz for opus."""
    return resample(samples, SAMPLE_RATE, OUTPUT_RATE)


class CompressedAudioDecoder:
    """Decode a compressed audio byte stream (edge-tts's mp3) to mono int16 while the bytes arrive.

    The codec's parser finds frame boundaries in arbitrary network chunks, so
    audio comes out frame by frame rather than after the whole download.
    """

    def __init__(self, codec: str = "mp3") -> None:
        self._codec = av.CodecContext.create(codec, "r")
        self._to_mono_s16 = av.AudioResampler(format="s16", layout="mono")  # keeps the stream's rate
        self.sample_rate = 0

    def decode(self, data: bytes) -> np.ndarray:
        return self._convert(frame for packet in self._codec.parse(data) for frame in self._decode_packet(packet))

    def flush(self) -> np.ndarray:
        """Samples still held by the parser and decoder at the end of the stream."""
        tail = [frame for packet in self._codec.parse(None) for frame in self._decode_packet(packet)]
        return self._convert([*tail, *self._codec.decode(None), None])

    def _decode_packet(self, packet: av.Packet) -> list[av.AudioFrame]:
        try:
            return self._codec.decode(packet)
        except av.error.InvalidDataError:
            return []  # a tag (ID3) or a damaged frame: skip it, as players do

    def _convert(self, frames: Iterable[av.AudioFrame | None]) -> np.ndarray:
        out = []
        for frame in frames:
            if frame is not None:
                self.sample_rate = frame.sample_rate
            out.extend(f.to_ndarray().reshape(-1) for f in self._to_mono_s16.resample(frame))
        return np.concatenate(out) if out else np.zeros(0, np.int16)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), the one Wav2Lip's filterbank used."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """(80, N_FFT/2+1) triangular filters, area-normalised (each filter integrates to 1 over Hz)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), MEL_BINS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_freqs[None, :] - lower) / (centre - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def mel_centre_frequencies() -> np.ndarray:
    """Centre frequency in Hz of each of the 80 mel bins (for features read off the mel)."""
    return _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), MEL_BINS + 2))[1:-1]


@lru_cache(maxsize=1)
def _analysis_window() -> np.ndarray:
    return get_window("hann", WIN, fftbins=True)  # periodic Hann, as the published STFT used


def melspectrogram(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel of 16 kHz mono audio: (80, 1 + len // 200) float32 in [-4, 4].

    Pre-emphasis, centred STFT (reflect padding), magnitude → mel → dB relative to
    20 dB, then mapped from [-100 dB, 0 dB] onto [-4, 4] with clipping.
    """
    wav = to_float32(np.asarray(samples)).astype(np.float64)
    emphasised = lfilter([1.0, -PREEMPHASIS], [1.0], wav)
    pad = N_FFT // 2
    mode = "reflect" if len(emphasised) > pad else "constant"
    padded = np.pad(emphasised, pad, mode=mode)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * _analysis_window(), axis=1))
    mel = mel_filterbank() @ magnitude.T
    min_amplitude = 10 ** (MIN_LEVEL_DB / 20)
    db = 20 * np.log10(np.maximum(min_amplitude, mel)) - REF_LEVEL_DB
    scaled = 2 * MAX_ABS_VALUE * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS_VALUE
    return np.clip(scaled, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


def mel_start(frame_index: int, fps: float) -> int:
    """First mel column of video frame ``frame_index`` (DESIGN.md §4)."""
    return int(MEL_COLUMNS_PER_SECOND * frame_index / fps)


def mel_window(mel: np.ndarray, frame_index: int, fps: float) -> np.ndarray:
    """The (80, 16) window for video frame ``frame_index``; past the end of ``mel`` it is padded with silence."""
    start = mel_start(frame_index, fps)
    window = mel[:, start : start + MEL_WINDOW]
    if window.shape[1] == MEL_WINDOW:
        return np.ascontiguousarray(window, dtype=np.float32)
    out = np.full((mel.shape[0], MEL_WINDOW), MEL_SILENCE, dtype=np.float32)
    out[:, : window.shape[1]] = window
    return out
