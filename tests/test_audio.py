"""realtime.audio: formats, resampling (one-shot and streamed), mp3 stream decoding, the Wav2Lip mel."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from realtime import audio
from realtime.audio import (
    CompressedAudioDecoder,
    apply_gain,
    mel_filterbank,
    mel_window,
    melspectrogram,
    resample,
    to_16k,
    to_48k,
    to_float32,
    to_int16,
)


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(to_float32(samples) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def test_int16_float_round_trip_and_clipping():
    pcm = np.array([-32768, -1, 0, 1, 32767], np.int16)
    assert np.abs(to_int16(to_float32(pcm)).astype(int) - pcm).max() <= 1
    assert to_int16(np.array([2.0, -2.0], np.float32)).tolist() == [32767, -32767]
    assert apply_gain(np.array([20000, -20000, 100], np.int16), 2.0).tolist() == [32767, -32768, 200]


@pytest.mark.parametrize(("source_rate", "target_rate"), [(22050, 16000), (24000, 16000), (16000, 48000)])
def test_resample_keeps_pitch_length_and_dtype(source_rate, target_rate):
    tone = to_int16(sine(440, 1.0, source_rate))
    out = resample(tone, source_rate, target_rate)
    assert out.dtype == np.int16
    assert abs(len(out) - target_rate) <= 1
    assert dominant_frequency(out, target_rate) == pytest.approx(440, abs=2)
    assert to_16k(tone, source_rate).shape[0] == pytest.approx(16000, abs=1)
    assert len(to_48k(to_int16(sine(440, 0.02, 16000)))) == 960


def make_mp3(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(to_int16(samples).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def test_compressed_decoder_streams_mp3_from_arbitrary_chunks():
    encoded = make_mp3(sine(300, 1.5, 24000), 24000)
    decoder = CompressedAudioDecoder("mp3")
    pieces = [decoder.decode(encoded[i : i + 777]) for i in range(0, len(encoded), 777)]
    assert sum(len(p) for p in pieces[: len(pieces) // 2]) > 0, "audio must come out before the stream ends"
    out = np.concatenate([*pieces, decoder.flush()])
    assert decoder.sample_rate == 24000
    assert out.dtype == np.int16
    assert len(out) / 24000 == pytest.approx(1.5, abs=0.1)
    assert dominant_frequency(out, 24000) == pytest.approx(300, abs=3)


def test_mel_shape_range_and_silence():
    mel = melspectrogram(np.zeros(16000, np.float32))
    assert mel.shape == (80, 81)  # 1 + 16000 // 200 columns: 80 a second
    assert mel.dtype == np.float32
    assert np.all(mel == -4.0)
    loud = melspectrogram(np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32))
    assert loud.min() >= -4.0 and loud.max() <= 4.0 and loud.mean() > 0


def test_mel_filterbank_is_area_normalised_slaney_triangles():
    bank = mel_filterbank()
    assert bank.shape == (80, 401)
    bin_hz = 16000 / 800
    wide_enough = (bank > 0).sum(axis=1) >= 8  # the discrete sum approximates the integral only for wide filters
    areas = bank.sum(axis=1) * bin_hz
    np.testing.assert_allclose(areas[wide_enough], 1.0, rtol=0.05)
    peaks = np.fft.rfftfreq(800, 1 / 16000)[bank.argmax(axis=1)]
    assert peaks[0] < 120 and 7000 < peaks[-1] < 7600
    assert np.all(np.diff(peaks) >= 0)


def test_mel_level_is_db_normalised_and_tone_lands_in_its_band():
    """A 20 dB louder input shifts unclipped values by 8 × 20 / 100 = 1.6; a 1 kHz tone peaks in the 1 kHz band."""
    quiet = sine(1000, 0.5, 16000, amplitude=0.01)
    soft, loud = melspectrogram(quiet), melspectrogram(quiet * 10)
    unclipped = (soft > -3.9) & (loud < 3.9)
    assert unclipped.sum() > 100
    np.testing.assert_allclose((loud - soft)[unclipped], 1.6, atol=1e-3)
    centres = audio.mel_centre_frequencies()
    peak_bin = int(np.argmax(loud[:, 20]))
    assert 900 < centres[peak_bin] < 1100


def test_mel_window_start_and_padding():
    mel = np.arange(80 * 100, dtype=np.float32).reshape(80, 100)
    np.testing.assert_array_equal(mel_window(mel, 0, 25), mel[:, 0:16])
    np.testing.assert_array_equal(mel_window(mel, 7, 25), mel[:, 22:38])  # int(80 * 7 / 25) = 22
    np.testing.assert_array_equal(mel_window(mel, 7, 50), mel[:, 11:27])
    tail = mel_window(mel, 30, 25)  # starts at column 96: 4 real columns, 12 of silence
    assert tail.shape == (80, 16)
    np.testing.assert_array_equal(tail[:, :4], mel[:, 96:100])
    assert np.all(tail[:, 4:] == -4.0)
