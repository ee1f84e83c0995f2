"""The weights-free default engine: the mouth in the output images follows the loudness of real speech, silence
leaves frames untouched, vowels pick their visemes, and requests are independent of each other."""

from __future__ import annotations

import asyncio

import numpy as np

from realtime.audio import SAMPLE_RATE, mel_window, melspectrogram, to_16k, to_float32
from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync
from realtime.engines.lipsync.visemes import mouth_shape
from realtime.engines.registry import engine_class
from realtime.engines.tts.base import VoiceSettings
from realtime.engines.tts.piper import PiperTTS
from testkit.bundles import assert_same_frame, frame_requests

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


def piper_speech(text: str) -> np.ndarray:
    """Real offline speech at 16 kHz float32, with 0.3 s of silence before and after."""

    async def synthesise() -> np.ndarray:
        chunks = [chunk async for chunk in PiperTTS(VoiceSettings()).synthesize(text)]
        return to_16k(np.concatenate([c.samples for c in chunks]), chunks[0].sample_rate)

    speech = to_float32(asyncio.run(synthesise()))
    pad = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, speech, pad])


def openness_from_image(bundle, frame: np.ndarray, index: int) -> float:
    """How much the mouth and jaw region differs from the avatar's idle frame: read from pixels only."""
    x1, y1, x2, y2 = bundle.mouth_boxes[index]
    height = y2 - y1
    region = (slice(y1, y2 + height), slice(x1, x2))
    return float(np.abs(frame[region].astype(np.float32) - bundle.frames[index][region].astype(np.float32)).mean())


def test_registry_name():
    assert engine_class("lipsync", "mouth_warp") is MouthWarpLipSync
    assert MouthWarpLipSync.name == "mouth_warp"


def test_mouth_follows_the_loudness_of_real_speech(astronaut_bundle):
    speech = piper_speech("Hello! Welcome to the live demo. I can talk to you about anything you like.")
    requests = frame_requests(astronaut_bundle, speech)
    frames = MouthWarpLipSync().render_batch(requests)
    loudness = np.array([np.sqrt(np.mean(r.audio.astype(np.float64) ** 2)) for r in requests])
    pairs = zip(requests, frames, strict=True)
    openness = np.array([openness_from_image(astronaut_bundle, frame, r.frame_index) for r, frame in pairs])
    correlation = float(np.corrcoef(loudness, openness)[0, 1])
    print(f"mouth_warp: Pearson r(audio RMS, image openness) = {correlation:.3f} over {len(frames)} frames")
    assert correlation >= 0.6
    assert openness[:5].max() == 0, "the leading silence keeps the avatar's own mouth"
    assert openness.max() > 5, "speech must visibly open the mouth"


def test_silence_leaves_frames_unchanged_and_shapes_are_right(astronaut_bundle):
    quiet = np.zeros(4 * SAMPLES_PER_FRAME, np.float32)
    quiet[::7] = 1e-4  # a noise floor far below speech
    requests = frame_requests(astronaut_bundle, quiet)
    frames = MouthWarpLipSync().render_batch(requests)
    assert len(frames) == len(requests) == 4
    for request, frame in zip(requests, frames, strict=True):
        source = astronaut_bundle.frames[request.frame_index]
        assert frame.shape == source.shape == (512, 512, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame, source)
        assert frame.flags.writeable and not np.shares_memory(frame, source)


def test_speech_changes_only_the_mouth_region(astronaut_bundle):
    speech = piper_speech("Ah.")
    requests = frame_requests(astronaut_bundle, speech)
    loudest = max(requests, key=lambda r: np.abs(r.audio).mean())
    (frame,) = MouthWarpLipSync().render_batch([loudest])
    source = astronaut_bundle.frames[loudest.frame_index]
    changed_rows, changed_cols = np.nonzero(np.any(frame != source, axis=2))
    x1, y1, x2, y2 = astronaut_bundle.mouth_boxes[loudest.frame_index]
    width, height = x2 - x1, y2 - y1
    assert changed_rows.size > 0
    assert changed_cols.min() >= x1 - 1.5 * width and changed_cols.max() <= x2 + 1.5 * width
    assert changed_rows.min() >= y1 - height and changed_rows.max() <= y2 + 4 * height
    below_lip_line = frame[(y1 + y2) // 2 : y2, (x1 + x2) // 2].mean(axis=1)
    assert below_lip_line.min() < 80, "the opened gap is shaded dark"


def test_requests_are_independent_of_their_batch(astronaut_bundle):
    speech = piper_speech("One two three.")
    requests = frame_requests(astronaut_bundle, speech)[5:15]
    engine = MouthWarpLipSync()
    together = engine.render_batch(requests[::-1])[::-1]
    for request, frame in zip(requests, together, strict=True):
        assert_same_frame(frame, engine.render_batch([request])[0])


def test_vowels_pick_their_visemes():
    """ "ee" stretches the corners outwards and "oo" pulls them in; "ah" drops the jaw most."""

    def mean_shape(text: str) -> tuple[float, float]:
        speech = piper_speech(text)
        mel = melspectrogram(speech)
        shapes = [
            mouth_shape(speech[i * SAMPLES_PER_FRAME : (i + 1) * SAMPLES_PER_FRAME], mel_window(mel, i, FPS))
            for i in range(len(speech) // SAMPLES_PER_FRAME)
        ]
        voiced = [s for s in shapes if s.openness > 0.5]
        return float(np.mean([s.jaw for s in voiced])), float(np.mean([s.stretch for s in voiced]))

    ah_jaw, ah_stretch = mean_shape("Ah.")
    ee_jaw, ee_stretch = mean_shape("Eee.")
    _, oo_stretch = mean_shape("Who.")
    assert ee_stretch > 0.2 > ah_stretch
    assert oo_stretch < 0 < ee_stretch
    assert ah_jaw > ee_jaw


def test_a_batch_renders_the_same_pixels_as_each_frame_alone(astronaut_bundle):
    """Silent and speaking frames of one batch, warped together on one window, come out exactly as alone."""
    requests = frame_requests(astronaut_bundle, piper_speech("Hello! Mm, maybe."))
    engine = MouthWarpLipSync()
    closed = [mouth_shape(r.audio, r.mel).is_closed for r in requests]
    assert any(closed) and not all(closed)
    for start in range(0, len(requests), 8):
        batch = requests[start : start + 8]
        for request, frame in zip(batch, engine.render_batch(batch), strict=True):
            assert_same_frame(frame, engine.render_batch([request])[0])
