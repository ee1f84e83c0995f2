"""The mouth-atlas engine on a real face clip: the first shot of opencv-doc's ``Megamind.avi`` (96 frames of one
character talking), with the face-mesh landmarks MediaPipe's model gave for those frames
(``tests/fixtures/megamind_landmarks.npz``, recorded once so this test needs no landmark model).

What is asserted is the engine's own geometry and choices: the chosen mouths follow the loudness of real Piper
speech, close in silence, sit on the base frame's lips, and blend in without a seam; the atlas reports its
coverage and asks for more speech when the footage is thin.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from realtime.engines.lipsync.atlas import AtlasLipSync, choose_entries, target_shapes
from realtime.engines.lipsync.base import LipSyncRequest
from realtime.engines.lipsync.mouth_atlas import LIPS, MouthAtlas, build_mouth_atlas
from realtime.engines.lipsync.mouth_space import apply
from realtime.engines.lipsync.visemes import mouth_shapes
from realtime.engines.registry import engine_class
from realtime.face import topology
from tests.fixtures.bundles import frame_requests
from tests.test_lipsync_mouth_warp import piper_speech

CLIP = Path(__file__).resolve().parent.parent / "data" / "test-media" / "Megamind.avi"
LANDMARKS = Path(__file__).resolve().parent / "fixtures" / "megamind_landmarks.npz"


@pytest.fixture(scope="module")
def clip():
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is missing: scripts/bootstrap.sh fetches it from Debian's opencv-doc package")
    recorded = np.load(LANDMARKS)
    first, landmarks = int(recorded["first_frame"]), recorded["landmarks"]
    with av.open(str(CLIP)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in islice(container.decode(video=0), first + len(landmarks))]
    return np.stack(frames[first:]), landmarks


@pytest.fixture(scope="module")
def avatar(clip, tmp_path_factory):
    frames, landmarks = clip
    folder = tmp_path_factory.mktemp("megamind")
    build_mouth_atlas(frames, landmarks).save(folder)
    height, width = frames.shape[1:3]
    avatar = SimpleNamespace(path=folder, frames=frames, landmarks=landmarks, frame_count=len(frames))
    avatar.manifest = SimpleNamespace(height=height, width=width)
    avatar.extra_folder = lambda name: folder
    avatar.pingpong_index = lambda tick: _pingpong(tick, len(frames))
    return avatar


def _pingpong(tick: int, count: int) -> int:
    period = 2 * count - 2
    position = tick % period
    return position if position < count else period - position


@pytest.fixture(scope="module")
def speech():
    return piper_speech("Hello! Welcome to the live demo. I can talk about anything you like, maybe books or music.")


def test_registry_name():
    assert engine_class("lipsync", "atlas") is AtlasLipSync


def test_atlas_indexes_the_persons_mouths_by_shape(avatar):
    atlas = MouthAtlas.load(avatar.path)
    coverage = atlas.coverage
    assert coverage.frames == len(avatar.frames)
    assert 20 <= coverage.shapes == len(atlas.patches) <= 51
    assert coverage.opening_min < 0.01 and coverage.opening_max > 0.05  # closed to open, in face heights
    assert coverage.warnings == []
    assert atlas.patches.dtype == np.uint8 and atlas.patches.shape[1:3] == atlas.mask.shape
    assert len(np.unique(atlas.cells, axis=0)) == len(atlas.cells) - 1  # one per cell, plus the most closed
    # Each entry is its source frame's own mouth: the measured shape of that frame.
    sources = atlas.sources
    np.testing.assert_allclose(atlas.features[:, 0], topology.mouth_opening(avatar.landmarks[sources]), atol=1e-5)


def test_thin_footage_asks_for_more_speech(clip):
    frames, landmarks = clip
    closed = np.argsort(topology.mouth_opening(landmarks))[:12]
    (warning,) = build_mouth_atlas(frames[closed], landmarks[closed]).coverage.warnings
    assert "few mouth shapes" in warning and "Record at least 20 seconds" in warning


def _loudness_db(requests: list[LipSyncRequest]) -> np.ndarray:
    rms = np.array([np.sqrt(np.mean(np.square(r.audio, dtype=np.float64))) for r in requests])
    return 20 * np.log10(np.maximum(rms, 1e-5))


def _best_lag_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 3) -> tuple[int, float]:
    scores = {
        lag: float(np.corrcoef(a[max(lag, 0) : len(a) + min(lag, 0)], b[max(-lag, 0) : len(b) - max(lag, 0)])[0, 1])
        for lag in range(-max_lag, max_lag + 1)
    }
    lag = max(scores, key=scores.get)
    return lag, scores[lag]


def test_chosen_mouths_follow_loudness_close_in_pauses_and_sit_on_the_lips(avatar, speech):
    requests = frame_requests(avatar, speech)
    engine = AtlasLipSync()
    fitted = engine.fitted(avatar)
    indices = np.array([r.frame_index for r in requests])
    shapes = mouth_shapes([r.audio for r in requests], np.stack([r.mel for r in requests]))
    entries, weights = choose_entries(fitted, target_shapes(fitted, shapes), indices)
    atlas = fitted.atlas
    opening = (atlas.features[entries, 0] * weights).sum(axis=1)
    loudness = _loudness_db(requests)

    lag, correlation = _best_lag_correlation(opening, loudness)
    print(f"atlas: r(chosen opening, loudness dB) = {correlation:.3f} at lag {lag} over {len(requests)} frames")
    assert correlation >= 0.7 and abs(lag) <= 1

    speaking = loudness > -45
    closed = float(np.percentile(topology.mouth_opening(avatar.landmarks), 2))
    assert np.percentile(opening[speaking], 10) <= closed + 0.01  # bilabials and pauses shut the lips
    assert opening[:5].max() <= closed + 0.01  # the leading silence

    # Where the chosen mouth lands on the base frame: upper lip and corners near the base frame's own.
    best = entries[:, 0]
    lips_in_frame = apply(fitted.to_frame[indices], atlas.lips[best])
    base = avatar.landmarks[indices][:, LIPS]
    face_height = topology.face_height(avatar.landmarks[indices])[:, None]
    upper = [LIPS.index(i) for i in (*topology.OUTER_LIPS_UPPER, topology.MOUTH_LEFT, topology.MOUTH_RIGHT)]
    error = np.linalg.norm(lips_in_frame[:, upper] - base[:, upper], axis=2) / face_height
    print(f"atlas: upper lip and corners off by {np.median(error):.3f} (median), {np.percentile(error, 95):.3f} (p95)")
    assert np.median(error) <= 0.03


def _gradient(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32).mean(axis=2)
    gy, gx = np.gradient(grey)
    return np.hypot(gx, gy)


def test_rendered_frames_blend_in_without_a_seam(avatar, speech):
    requests = frame_requests(avatar, speech)[10:60]
    engine = AtlasLipSync()
    frames = engine.render_batch(requests)
    fitted = engine.fitted(avatar)
    ratios: dict[str, list[float]] = {"mouth": [], "region": []}
    for request, frame in zip(requests, frames, strict=True):
        base = avatar.frames[request.frame_index]
        assert frame.shape == base.shape and frame.dtype == np.uint8
        x1, y1, x2, y2 = fitted.boxes[request.frame_index]
        outside = np.ones(base.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(frame[outside], base[outside]), "only the mouth region is touched"
        matrix = fitted.to_frame[request.frame_index]
        for name, mask in (("mouth", fitted.atlas.mask), ("region", fitted.region)):
            alpha = cv2.warpAffine(mask, matrix, base.shape[1::-1], flags=cv2.INTER_LINEAR)
            edge = (alpha > 0.02) & (alpha < 0.3)  # the outer ring of the feather, where a seam would show
            ratios[name].append(_gradient(frame)[edge].mean() / max(_gradient(base)[edge].mean(), 1e-6))
    for name, values in ratios.items():
        print(f"atlas: seam gradient at the {name} edge: median {np.median(values):.2f}, max {max(values):.2f}")
        assert np.median(values) <= 1.2


def test_batches_give_the_frames_of_single_calls_for_unrelated_requests(avatar, speech):
    requests = frame_requests(avatar, speech)[20:60:5]  # not consecutive: no run links them
    engine = AtlasLipSync()
    together = engine.render_batch(requests)
    for request, frame in zip(requests, together, strict=True):
        np.testing.assert_array_equal(engine.render_batch([request])[0], frame)
