"""468 face-mesh landmarks per frame, and tracking them through a clip.

``landmarks`` runs the mesh model on the face crop: found by the detector, or seeded by the previous frame's
points (cheaper, and steadier). ``track`` does that over a clip, re-detecting when the face is lost, and smooths
the points in time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from . import topology
from .detector import FaceBox, FaceDetector
from .models import FACE_MESH, TfliteModel
from .roi import FaceRoi, roi_from_face, roi_from_landmarks
from .smoothing import LandmarkSmoother

MIN_PRESENCE = 0.5  # the mesh model's face-presence score below which the crop holds no face
POINTS = 468


@dataclass(frozen=True)
class Landmarks:
    """One face's mesh: ``points`` (468, 3) float32, x and y in full-frame pixels, z (depth, smaller is
    nearer) on the same scale; ``score`` the model's face presence in [0, 1]."""

    points: np.ndarray
    score: float


def head_pose(points: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from a mesh's 3-D points; 0, 0, 0 faces the camera upright. Yaw is
    positive when the face turns to the image right, pitch when it tilts up, roll when the eye line goes down
    to the image right."""
    pts = np.asarray(points, np.float64)
    across = pts[454] - pts[234]  # cheek to cheek, towards the image right
    down = pts[topology.CHIN] - pts[topology.FACE_TOP]
    across /= max(np.linalg.norm(across), 1e-9)
    down -= across * (down @ across)
    down /= max(np.linalg.norm(down), 1e-9)
    forward = np.cross(across, down)  # away from the camera for an upright frontal face
    yaw = math.degrees(math.atan2(-forward[0], forward[2]))
    pitch = math.degrees(math.atan2(forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    return np.array([yaw, pitch, roll], np.float32)


class FaceLandmarker:
    """Face detection and mesh landmarks on RGB frames of any size. Not thread-safe: one per thread."""

    def __init__(self, num_threads: int = 1) -> None:
        self._detector = FaceDetector(num_threads)
        self._mesh = TfliteModel(FACE_MESH, num_threads)
        self._side = self._mesh.input_size[0]

    def detect(self, rgb: np.ndarray, include_small: bool = False) -> list[FaceBox]:
        """Faces in the frame, most confident first; ``include_small`` also finds faces of ~30 px (slower)."""
        return self._detector.detect(rgb, include_small)

    def landmarks_in(self, rgb: np.ndarray, roi: FaceRoi) -> Landmarks | None:
        """The mesh of the face inside ``roi``, or None when the model sees no face there."""
        crop = roi.cut(np.ascontiguousarray(rgb), self._side).astype(np.float32) / 255.0
        outputs = self._mesh.run(crop)
        raw = next(o for o in outputs if o.size == POINTS * 3).reshape(POINTS, 3)
        logit = float(next(o for o in outputs if o.size == 1).reshape(()))
        score = 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))
        if score < MIN_PRESENCE:
            return None
        matrix = roi.crop_to_frame(self._side)
        points = np.empty((POINTS, 3), np.float32)
        points[:, :2] = raw[:, :2] @ matrix[:, :2].T + matrix[:, 2]
        points[:, 2] = raw[:, 2] * (roi.size / self._side)
        return Landmarks(points, score)

    def landmarks(self, rgb: np.ndarray, seed: np.ndarray | None = None) -> Landmarks | None:
        """The mesh of the face seeded by ``seed`` (a previous frame's (468, 2|3) points), else of the most
        confident detected face; None when there is no face."""
        if seed is not None:
            found = self.landmarks_in(rgb, roi_from_landmarks(seed))
            if found is not None:
                return found
        faces = self.detect(rgb)
        return self.refined(rgb, faces[0]) if faces else None

    def refined(self, rgb: np.ndarray, face: FaceBox) -> Landmarks | None:
        """The mesh of a detected face, run twice: the detector's box only roughly frames the face (on a
        large frame it was found at 128 px), so the second crop is framed by the first mesh, as every
        tracked frame is."""
        first = self.landmarks_in(rgb, roi_from_face(face))
        if first is None:
            return None
        return self.landmarks_in(rgb, roi_from_landmarks(first.points)) or first

    def track(self, frames: Iterable[np.ndarray], fps: float = 25.0, smooth: bool = True) -> Iterator[Landmarks | None]:
        """Landmarks for each frame of a clip, in order: each frame's crop is seeded by the previous frame's
        points; a frame without a face yields None and the next one is searched whole."""
        smoother = LandmarkSmoother(fps)
        previous: np.ndarray | None = None
        for rgb in frames:
            found = self.landmarks(rgb, previous)
            if found is None:
                previous = None
                smoother.reset()
                yield None
                continue
            previous = found.points
            yield Landmarks(smoother(found.points), found.score) if smooth else found
