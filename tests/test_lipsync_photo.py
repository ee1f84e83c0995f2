"""The photo engine and the idle loop on scikit-image's astronaut portrait (an open smile with the upper teeth
showing), with its face-mesh landmarks.

Lips meet in silence even though the portrait smiles with its teeth apart; speech opens the mouth with the
portrait's own teeth, a shaded inside and the upper lip held where it is; only the mouth and jaw are touched;
the idle loop blinks and moves a little, never freezing, and carries its landmarks along.
"""

from __future__ import annotations

import gc

import cv2
import numpy as np
import pytest
import skimage.data

from avatars_app.bundle.builder import build_bundle
from realtime.avatar.idle_loop import idle_loop
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.default import DefaultLipSync
from realtime.engines.lipsync.photo_mouth import MouthGeometry, PhotoMouthLipSync, opening_fractions, render_mouth
from realtime.engines.lipsync.visemes import mouth_shapes
from realtime.engines.registry import engine_class
from realtime.face import topology
from realtime.face.mesh import FaceLandmarker
from testkit.bundles import (
    MemoryAvatar,
    assert_same_frame,
    astronaut_mesh,
    frame_requests,
    prebuilt_options,
    write_astronaut_bundle,
)
from tests.test_lipsync_mouth_warp import piper_speech


@pytest.fixture(scope="module")
def portrait():
    return skimage.data.astronaut(), astronaut_mesh()[:, :2]


@pytest.fixture(scope="module")
def avatar(portrait):
    frames, landmarks = idle_loop(*portrait, seconds=4.0, fps=25)
    return MemoryAvatar(frames=frames, landmarks=landmarks)


def _inside(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixels inside the portrait's own inner lip contour."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(topology.INNER_LIPS)]).astype(np.int32)], 1)
    return image[mask.astype(bool)].astype(int)


def _teeth_share(pixels: np.ndarray) -> float:
    """Share of bright, unsaturated (tooth-white) pixels."""
    return float(((pixels.min(axis=1) > 170) & (np.ptp(pixels, axis=1) < 45)).mean())


def _dark_count(pixels: np.ndarray) -> int:
    return int((pixels.mean(axis=1) < 100).sum())


def test_registry_name():
    assert engine_class("lipsync", "photo") is PhotoMouthLipSync


def test_lips_meet_in_silence_even_from_an_open_smile(portrait):
    image, points = portrait
    closed = render_mouth(image, MouthGeometry.of(image, points), 0.0)
    before, after = _teeth_share(_inside(image, points)), _teeth_share(_inside(closed, points))
    assert topology.mouth_opening(points) > 0.05  # the portrait's rest pose is open
    assert before > 0.25 and after < 0.25 * before, (before, after)  # the lower lip now covers the teeth


def test_opening_shows_teeth_and_a_shaded_inside_below_a_held_upper_lip(portrait):
    image, points = portrait
    geometry = MouthGeometry.of(image, points)
    wide = render_mouth(image, geometry, 0.13)
    x_mid = int(points[topology.UPPER_LIP_MID, 0])
    upper = int(points[topology.UPPER_LIP_MID, 1])
    lip_edge = int(points[list(topology.INNER_LIPS_UPPER), 1].min()) - 1
    np.testing.assert_array_equal(wide[:lip_edge], image[:lip_edge])  # nothing above the upper lip's edge moves
    column = wide[upper : upper + 25, x_mid - 2 : x_mid + 3].mean(axis=1)
    assert column.min(axis=1).max() > 170, "teeth under the upper lip"
    assert column.mean(axis=1).min() < 110, "a dark inside below them"
    dark = [_dark_count(_inside(render_mouth(image, geometry, o), points)) for o in (0.0, 0.07, 0.1, 0.13)]
    assert dark == sorted(dark) and dark[-1] > dark[0] + 20


def test_mouth_follows_real_speech_and_only_the_mouth_changes(avatar):
    speech = piper_speech("Hello! Welcome to the live demo. I can talk to you about anything you like.")
    requests = frame_requests(avatar, speech)
    frames = PhotoMouthLipSync().render_batch(requests)
    loudness = np.array([np.sqrt(np.mean(np.square(r.audio, dtype=np.float64))) for r in requests])
    change = []
    for request, frame in zip(requests, frames, strict=True):
        base, points = avatar.frames[request.frame_index], avatar.landmarks[request.frame_index]
        face_height = float(topology.face_height(points))
        changed_rows, changed_cols = np.nonzero(np.any(frame != base, axis=2))
        if changed_rows.size:
            assert changed_rows.min() >= points[topology.UPPER_LIP_MID, 1] - 0.12 * face_height
            assert changed_rows.max() <= points[topology.CHIN, 1] + 0.4 * face_height
            mouth_width = points[topology.MOUTH_RIGHT, 0] - points[topology.MOUTH_LEFT, 0]
            assert changed_cols.min() >= points[topology.MOUTH_LEFT, 0] - 0.6 * mouth_width
            assert changed_cols.max() <= points[topology.MOUTH_RIGHT, 0] + 0.6 * mouth_width
        # How far the picture is from the same frame with the lips together, read from pixels only.
        shut = render_mouth(base, MouthGeometry.of(base, points), 0.0)
        x1, x2 = int(points[topology.MOUTH_LEFT, 0]), int(points[topology.MOUTH_RIGHT, 0])
        y1, y2 = int(points[topology.UPPER_LIP_MID, 1]), int(points[topology.CHIN, 1])
        change.append(np.abs(frame[y1:y2, x1:x2].astype(float) - shut[y1:y2, x1:x2]).mean())
    correlation = float(np.corrcoef(loudness, change)[0, 1])
    print(f"photo: r(audio RMS, difference from lips together) = {correlation:.3f} over {len(frames)} frames")
    assert correlation >= 0.6


def test_loud_speech_opens_an_open_smile_well_past_its_rest(avatar):
    """The face mesh on the rendered frames: the loudest open vowels part the lips well beyond the portrait's own
    open smile (the lower lip drops, a shaded inside shows under the teeth), not just to it."""
    speech = piper_speech("Ah, hello! I am so glad you are here. Father, are you ready to start?")
    requests = frame_requests(avatar, speech)
    loudness = np.array([np.sqrt(np.mean(np.square(r.audio, dtype=np.float64))) for r in requests])
    loud = np.argsort(loudness)[-12:]
    frames = PhotoMouthLipSync().render_batch([requests[i] for i in loud])
    landmarker = FaceLandmarker()
    openings = []
    for i, frame in zip(loud, frames, strict=True):
        base = avatar.landmarks[requests[i].frame_index]
        openings.append(
            topology.mouth_opening(landmarker.landmarks(frame, seed=base).points) - topology.mouth_opening(base)
        )
    print(f"photo: loudest frames open {np.median(openings):.3f} (median) face heights past the portrait's own")
    assert np.median(openings) >= 0.008  # 0.002 when the widest opening was a fixed 0.1 face heights


def test_a_batch_renders_the_same_pixels_as_each_frame_alone(avatar, tmp_path):
    """Requests of two avatars, loud, quiet and silent, rendered as one batch come out exactly as rendered one by
    one, whatever window the batch shares."""
    bundle = AvatarBundle.open(write_astronaut_bundle(tmp_path / "moving", frame_count=16))
    speech = piper_speech("Hello! Mm, maybe.")
    mixed = [
        r for pair in zip(frame_requests(avatar, speech), frame_requests(bundle, speech), strict=True) for r in pair
    ]
    engine = PhotoMouthLipSync()
    shut = opening_fractions(mouth_shapes([r.audio for r in mixed], np.stack([r.mel for r in mixed]))) == 0
    assert shut.any() and not shut.all()  # silent and speaking frames share batches
    for start in range(0, len(mixed), 8):
        batch = mixed[start : start + 8]
        together = engine.render_batch(batch)
        for request, frame in zip(batch, together, strict=True):
            assert_same_frame(frame, engine.render_batch([request])[0])
    assert len(engine.geometries) == 2


def test_the_engine_lets_an_avatar_go(portrait):
    """What the engine measured on an avatar's frames goes when the avatar does (roles come and go)."""
    frames, landmarks = idle_loop(*portrait, seconds=0.4, fps=25)
    passing = MemoryAvatar(frames=frames, landmarks=landmarks)
    engine = PhotoMouthLipSync()
    engine.render_batch(frame_requests(passing, piper_speech("Hello."))[:4])
    assert len(engine.geometries) == 1
    del passing
    gc.collect()
    assert len(engine.geometries) == 0


def test_idle_loop_blinks_and_moves_without_freezing(portrait, avatar):
    image, points = portrait
    frames, landmarks = avatar.frames, avatar.landmarks
    assert frames.shape == (100, *image.shape) and landmarks.shape == (100, 468, 2)
    eyes = topology.eye_opening(landmarks)
    assert eyes.max() > 0.2 and eyes.min() < 0.5 * eyes.max(), "at least one blink"
    assert (eyes < 0.5 * eyes.max()).sum() <= 8, "a blink is brief"
    face_height = float(topology.face_height(points))
    drift = np.linalg.norm(landmarks[:, topology.CHIN] - points[topology.CHIN], axis=1) / face_height
    assert 0.002 < drift.max() < 0.04, "small motion, not none"
    steps = [np.abs(frames[k].astype(int) - frames[k + 1]).mean() for k in range(len(frames) - 1)]
    assert min(steps) > 0 and max(steps) < 12, "every frame differs a little from the next"


def test_a_photo_builds_and_talks(tmp_path):
    """The astronaut uploaded as a PNG builds as a photo avatar; opened, it shows its idle loop (blinking, never
    frozen), and the default engine makes it talk: the lips part on speech and meet in the pauses."""
    source = tmp_path / "portrait.png"
    cv2.imwrite(str(source), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    folder, manifest = build_bundle(source, tmp_path / "avatar", "cd" * 32, prebuilt_options())
    assert manifest.kind == "photo" and manifest.frame_count == 1
    bundle = AvatarBundle.open(folder)
    assert bundle.frame_count > 50 and len(bundle.frames) == len(bundle.landmarks) == bundle.frame_count
    eyes = topology.eye_opening(bundle.landmarks)
    assert eyes.min() < 0.5 * eyes.max()  # it blinks
    assert not np.array_equal(bundle.frames[0], bundle.frames[bundle.frame_count // 2])  # it moves
    engine = DefaultLipSync()
    assert engine.engine_for(bundle) is engine.photo
    requests = frame_requests(bundle, piper_speech("Hello there. Mm, maybe."))
    frames = engine.render_batch(requests)
    landmarker = FaceLandmarker()
    openings = []
    for request, frame in zip(requests, frames, strict=True):
        found = landmarker.landmarks(frame, seed=bundle.landmarks[request.frame_index])
        openings.append(float(topology.mouth_opening(found.points)))
    loudness = np.array([np.sqrt(np.mean(np.square(r.audio, dtype=np.float64))) for r in requests])
    print(f"photo build: openings {np.round(openings, 3)}")
    assert max(openings) > 0.05 and min(openings) < 0.03  # apart on speech, together in the pauses
    assert np.corrcoef(loudness, openings)[0, 1] > 0.5
