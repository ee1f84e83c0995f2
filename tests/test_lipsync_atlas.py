"""The default engine on a video avatar: opencv-doc's ``Megamind.avi`` built the way a user's upload is (face
mesh, the longest steady shot, the mouth atlas as the build's extra step), then lip-synced to Piper speech.

What is asserted is the engine's own geometry and choices: the chosen mouths follow the loudness of real speech,
close in pauses, sit on the base frame's lips, and blend in without a seam; the atlas reports its coverage and
asks for more speech when the footage is thin. ``bench/face.py`` measures the rendered frames with the landmark
model as well.
"""

from __future__ import annotations

import gc

import cv2
import numpy as np
import pytest

from avatars_app.bundle.builder import build_bundle
from bench.face import seam_ratio
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync import atlas as atlas_module
from realtime.engines.lipsync.atlas import (
    AtlasLipSync,
    BaseParts,
    choose_entries,
    colour_gains,
    fit_avatar,
    target_shapes,
)
from realtime.engines.lipsync.atlas_build import SEEN_FRAMES, spread_poses
from realtime.engines.lipsync.base import LipSyncRequest
from realtime.engines.lipsync.default import DefaultLipSync
from realtime.engines.lipsync.mouth_atlas import (
    ARRAYS_FILE,
    ATLAS,
    CLOSED_POSES,
    MouthAtlas,
    atlas_grid,
    build_mouth_atlas,
)
from realtime.engines.lipsync.visemes import mouth_shapes
from realtime.engines.registry import engine_class
from realtime.face import topology
from realtime.face.mesh import FaceLandmarker
from testkit.bundles import assert_same_frame, frame_requests, prebuilt_options
from tests.fixtures.media import megamind
from tests.test_lipsync_mouth_warp import piper_speech

# The rendered opening against the loudness envelope (RMS): issue 12's goal. Choosing by the opening seen on the base
# frame's head pose (atlas_build.py) measures 0.76-0.80 on this clip (Piper's reads vary; 0.74 before), bench.face
# about 0.75 over a minute.
RENDERED_CORRELATION = 0.7
# The chosen entries' opening as seen on their base frames against loudness in dB: the pose cost trades some of it for
# mouths that fit the head.
CHOSEN_CORRELATION = 0.6


@pytest.fixture(scope="module")
def avatar(tmp_path_factory) -> AvatarBundle:
    folder = tmp_path_factory.mktemp("megamind")
    bundle, _ = build_bundle(megamind(), folder / "avatar", "ab" * 32, prebuilt_options())
    return AvatarBundle.open(bundle)


@pytest.fixture(scope="module")
def speech():
    return piper_speech("Hello! Welcome to the live demo. I can talk about anything you like, maybe books or music.")


def test_registry_names():
    assert engine_class("lipsync", "atlas") is AtlasLipSync
    assert engine_class("lipsync", "default") is DefaultLipSync


def test_the_build_makes_an_atlas_and_the_default_engine_uses_it(avatar):
    extra = avatar.manifest.extras[ATLAS]
    assert extra["built"] and extra["shapes"] >= 10
    engine = DefaultLipSync()
    assert engine.engine_for(avatar) is engine.atlas
    grid = atlas_grid(MouthAtlas.load(avatar.extra_folder(ATLAS)))
    assert grid.ndim == 3 and grid.shape[2] == 3 and grid.std() > 10  # the admin's picture of the mouths


def test_atlas_indexes_the_persons_mouths_by_shape(avatar):
    atlas = MouthAtlas.load(avatar.extra_folder(ATLAS))
    coverage = atlas.coverage
    assert coverage.frames == avatar.frame_count
    assert 15 <= coverage.shapes == len(atlas.patches) <= 51
    assert coverage.opening_min < 0.01 and coverage.opening_max > 0.05  # closed to open, in face heights
    assert coverage.warnings == []
    assert atlas.patches.dtype == np.uint8 and atlas.patches.shape[1:3] == (atlas.space.height, atlas.space.width)
    # One per cell, plus the most closed mouth of each stretch of head poses.
    assert len(atlas.cells) - CLOSED_POSES <= len(np.unique(atlas.cells, axis=0)) < len(atlas.cells)
    # Each entry is its source frame's own mouth: the measured shape of that frame.
    sources = atlas.sources
    np.testing.assert_allclose(atlas.features[:, 0], topology.mouth_opening(avatar.landmarks[sources]), atol=1e-5)


def test_atlas_saved_by_an_older_build_still_loads(avatar, tmp_path):
    """Bundles built before hold arrays nothing reads now, and no measured openings: loading ignores the former
    and takes each entry's own opening, on every base frame, for the latter."""
    atlas = MouthAtlas.load(avatar.extra_folder(ATLAS))
    atlas.save(tmp_path)
    arrays = dict(np.load(tmp_path / ARRAYS_FILE))
    current = {name: arrays.pop(name) for name in ("seen", "seen_frames")}
    older = {"ring_colour": np.zeros((len(atlas.patches), 3)), "frame_ring": np.zeros((avatar.frame_count, 3))}
    np.savez(tmp_path / ARRAYS_FILE, **arrays, **older, mask=np.zeros(atlas.patches.shape[1:3]))
    loaded = MouthAtlas.load(tmp_path)
    np.testing.assert_array_equal(loaded.patches, atlas.patches)
    np.testing.assert_array_equal(loaded.features, atlas.features)
    assert current["seen"].shape[1] > 1
    fitted = fit_avatar(loaded, avatar.landmarks, (avatar.manifest.height, avatar.manifest.width))
    np.testing.assert_array_equal(fitted.seen, np.broadcast_to(atlas.features[:, 0], fitted.seen.shape))


def test_the_build_measures_how_open_each_mouth_is_seen_on_the_avatars_frames(avatar):
    """Each entry's opening as the face mesh reads it composed on base frames spread over the head poses; every
    base frame takes the readings of its nearest measured pose (a measured frame, its own)."""
    atlas = MouthAtlas.load(avatar.extra_folder(ATLAS))
    assert atlas.seen.shape == (len(atlas.patches), min(SEEN_FRAMES, avatar.frame_count))
    assert len(np.unique(atlas.seen_frames)) == len(atlas.seen_frames)
    fitted = AtlasLipSync().fitted(avatar)
    for column, frame in enumerate(atlas.seen_frames):
        np.testing.assert_array_equal(fitted.seen[frame], atlas.seen[:, column])
    # Readings of openings: the entries open most where they were measured most open in their own frames.
    assert np.corrcoef(atlas.seen.mean(axis=1), atlas.features[:, 0])[0, 1] > 0.5


def test_measured_poses_spread_to_the_extremes():
    line = np.linspace(-1, 1, 21)[:, None] ** 3  # poses along one way of turning, crowded in the middle
    chosen = spread_poses(np.concatenate([line, np.zeros_like(line)], axis=1), 3)
    assert sorted(chosen.tolist()) == [0, 10, 20]
    assert len(spread_poses(line, 50)) == len(line)


def test_thin_footage_asks_for_more_speech(avatar):
    closed = np.argsort(topology.mouth_opening(avatar.landmarks))[:12]
    frames = [avatar.frames[i] for i in closed]
    (warning,) = build_mouth_atlas(frames, avatar.landmarks[closed]).coverage.warnings
    assert "few mouth shapes" in str(warning) and "Record at least 20 seconds" in str(warning)


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


def test_chosen_mouths_follow_loudness_and_close_in_pauses(avatar, speech):
    requests = frame_requests(avatar, speech)
    fitted = AtlasLipSync().fitted(avatar)
    indices = np.array([r.frame_index for r in requests])
    shapes = mouth_shapes([r.audio for r in requests], np.stack([r.mel for r in requests]))
    entries, weights = choose_entries(fitted, target_shapes(fitted, shapes), indices)
    opening = (fitted.seen[indices[:, None], entries] * weights).sum(axis=1)  # as seen on each base frame
    loudness = _loudness_db(requests)

    lag, correlation = _best_lag_correlation(opening, loudness)
    print(f"atlas: r(chosen opening, loudness dB) = {correlation:.3f} at lag {lag} over {len(requests)} frames")
    assert correlation >= CHOSEN_CORRELATION and abs(lag) <= 1

    speaking = loudness > -45
    closed = float(np.percentile(topology.mouth_opening(avatar.landmarks), 2))
    assert np.percentile(opening[speaking], 10) <= closed + 0.01  # bilabials and pauses shut the lips
    assert opening[:5].max() <= closed + 0.01  # the leading silence


def _rms(requests: list[LipSyncRequest]) -> np.ndarray:
    return np.array([np.sqrt(np.mean(np.square(r.audio, dtype=np.float64))) for r in requests])


@pytest.fixture(scope="module")
def rendered(avatar, speech):
    """Every frame of the speech rendered as a session's batches of 8 are, and the face mesh run on each, seeded
    by the base frame's points (the independent measurement of bench/face.py)."""
    requests = frame_requests(avatar, speech)
    engine = AtlasLipSync()
    frames = [frame for i in range(0, len(requests), 8) for frame in engine.render_batch(requests[i : i + 8])]
    landmarker = FaceLandmarker()
    points = []
    for request, frame in zip(requests, frames, strict=True):
        found = landmarker.landmarks(frame, seed=avatar.landmarks[request.frame_index])
        assert found is not None
        points.append(found.points[:, :2])
    return requests, np.stack(points)


def test_rendered_mouths_follow_loudness_and_close(avatar, rendered):
    """Measured on the rendered frames: the opening follows the loudness envelope at a lag within one frame, and
    the lips close (bilabials, pauses) to the person's own closed mouth."""
    requests, points = rendered
    opening = topology.mouth_opening(points)
    loudness = _rms(requests)
    lag, correlation = _best_lag_correlation(opening, loudness)
    speaking = loudness > 0.02
    closed = float(np.percentile(topology.mouth_opening(avatar.landmarks), 2))
    p10 = float(np.percentile(opening[speaking], 10))
    print(f"atlas: rendered r(opening, loudness) = {correlation:.3f} at lag {lag}; p10 {p10:.3f} (closed {closed:.3f})")
    assert correlation >= RENDERED_CORRELATION and abs(lag) <= 1
    assert p10 <= closed + 0.01


def test_rendered_mouths_sit_on_the_base_frames_lips(avatar, rendered):
    """The upper lip and the corners stay where the base frame has them (no mouth on the chin)."""
    requests, points = rendered
    upper = [*topology.OUTER_LIPS_UPPER, topology.MOUTH_LEFT, topology.MOUTH_RIGHT]
    base = avatar.landmarks[[r.frame_index for r in requests]]
    errors = np.linalg.norm(points[:, upper] - base[:, upper], axis=2).max(axis=1) / topology.face_height(base)
    print(
        f"atlas: rendered upper lip and corners off by {np.median(errors):.3f} (median), "
        f"{np.percentile(errors, 95):.3f} (p95) face heights"
    )
    assert np.median(errors) <= 0.03


def _gradient(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float32).mean(axis=2)
    gy, gx = np.gradient(grey)
    return np.hypot(gx, gy)


def test_rendered_frames_blend_in_without_a_seam(avatar, speech):
    requests = frame_requests(avatar, speech)[10:60]
    engine = AtlasLipSync()
    frames = engine.render_batch(requests)
    fitted = engine.fitted(avatar)
    ratios: dict[str, list[float]] = {"changed": [], "region": []}
    for request, frame in zip(requests, frames, strict=True):
        base = avatar.frames[request.frame_index]
        assert frame.shape == base.shape and frame.dtype == np.uint8
        x1, y1, x2, y2 = fitted.boxes[request.frame_index]
        outside = np.ones(base.shape[:2], bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(frame[outside], base[outside]), "only the mouth region is touched"
        matrix = fitted.to_frame[request.frame_index]
        alpha = cv2.warpAffine(fitted.region, matrix, base.shape[1::-1], flags=cv2.INTER_LINEAR)
        edge = (alpha > 0.02) & (alpha < 0.3)  # the outer ring of the pasted region's feather
        ratios["region"].append(_gradient(frame)[edge].mean() / max(_gradient(base)[edge].mean(), 1e-6))
        changed = seam_ratio(frame, base)  # the edge of what visibly changed (the mouth mask drawn per frame)
        if changed is not None:
            ratios["changed"].append(changed)
    for name, values in ratios.items():
        print(f"atlas: seam gradient at the {name} edge: median {np.median(values):.2f}, max {max(values):.2f}")
        assert np.median(values) <= 1.2


def test_colour_match_counts_only_what_is_face_in_both_frames():
    """A mouth cut from a turned head has background where the base frame has cheek: the gain is measured only
    where both are face, so it matches the skin instead of brightening the whole mouth (a blotch)."""
    ys, xs = np.mgrid[0:64, 0:64]
    mouth = np.clip(1.5 - np.hypot(ys - 32, xs - 32) / 16, 0, 1)[None].astype(np.float32)  # feathered disc
    bases = np.full((1, 64, 64, 3), 130.0, np.float32)
    patches = np.full((1, 64, 64, 3), 120.0, np.float32)
    patches[:, :, :24] = 20.0  # the patch's background, on the left of its face
    faces = np.ones((1, 64, 64), np.float32)
    faces[:, :, :26] = 0.0
    np.testing.assert_allclose(colour_gains(bases, patches, mouth, faces), 130 / 120, rtol=1e-4)


def test_batches_give_the_frames_of_single_calls_for_unrelated_requests(avatar, speech):
    requests = frame_requests(avatar, speech)[20:60:5]  # not consecutive: no run links them
    engine = AtlasLipSync()
    together = engine.render_batch(requests)
    for request, frame in zip(requests, together, strict=True):
        assert_same_frame(frame, engine.render_batch([request])[0])


def test_a_batch_of_many_sessions_gives_each_sessions_own_frames(avatar, speech):
    """A pooled batch holds one session's consecutive frames (a run: its entries are chosen along it) beside other
    sessions' single frames; all of them are composed in one pass, and each comes out as its own call gives it."""
    requests = frame_requests(avatar, speech)
    run, others = requests[30:34], [requests[12], requests[47], requests[70], requests[55]]
    batch = [others[0], *run, others[1], others[2], others[3]]
    engine = AtlasLipSync()
    together = engine.render_batch(batch)
    alone = dict(zip(map(id, run), engine.render_batch(run), strict=True))
    alone.update((id(request), engine.render_batch([request])[0]) for request in others)
    for request, frame in zip(batch, together, strict=True):
        assert_same_frame(frame, alone[id(request)])


def test_base_frame_parts_are_kept_within_their_budget_and_cut_alike_again(avatar, monkeypatch):
    fitted = AtlasLipSync().fitted(avatar)
    first = BaseParts(fitted).get(avatar.frames, 0)
    budget = 5 * sum(part.nbytes for part in first)
    monkeypatch.setattr(atlas_module, "BASE_PARTS_BYTES", budget)
    parts = BaseParts(fitted)
    for index in range(avatar.frame_count):
        parts.get(avatar.frames, index)
        assert parts.nbytes <= budget
    for kept, again in zip(first, parts.get(avatar.frames, 0), strict=True):  # long evicted: cut anew
        np.testing.assert_array_equal(kept, again)


def test_the_kept_base_frame_parts_go_with_the_avatar(avatar, speech):
    passing = AvatarBundle.open(avatar.path)
    engine = AtlasLipSync()
    engine.render_batch(frame_requests(passing, speech)[:4])
    assert len(engine.parts) == 1
    del passing
    gc.collect()
    assert len(engine.parts) == 0
