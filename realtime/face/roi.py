"""The rotated square around a face that the mesh model sees, and the maps between it and the frame.

The face is cut upright (rotated so the eye line is level) and enlarged 1.5× around the face, the framing the
mesh model was trained on. A square crop keeps the face's aspect ratio: a stretched face halves the mouth
opening the model reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from . import topology
from .detector import FaceBox

ENLARGE = 1.5


@dataclass(frozen=True)
class FaceRoi:
    """A square of side ``size`` pixels centred on ``(cx, cy)``, turned by ``angle`` radians (image axes, y
    down: positive turns the square's x axis towards +y)."""

    cx: float
    cy: float
    size: float
    angle: float

    def crop_to_frame(self, crop_side: int) -> np.ndarray:
        """2×3 affine map from crop pixels to frame pixels."""
        scale = self.size / crop_side
        cos, sin = math.cos(self.angle) * scale, math.sin(self.angle) * scale
        half = crop_side / 2
        return np.array(
            [[cos, -sin, self.cx - cos * half + sin * half], [sin, cos, self.cy - sin * half - cos * half]],
            np.float64,
        )

    def cut(self, rgb: np.ndarray, crop_side: int) -> np.ndarray:
        """The upright crop_side×crop_side face image; outside the frame is black."""
        return cv2.warpAffine(
            rgb,
            self.crop_to_frame(crop_side),
            (crop_side, crop_side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
        )


def roi_from_face(face: FaceBox) -> FaceRoi:
    """From a detection: the eye key points give the angle, the box the size."""
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    cx, cy = face.centre
    return FaceRoi(cx, cy, max(face.width, face.height) * ENLARGE, math.atan2(ly - ry, lx - rx))


def roi_from_landmarks(points: np.ndarray) -> FaceRoi:
    """From a previous frame's mesh: the outer eye corners give the angle; the points' extent in the face's
    own upright frame gives the centre and size."""
    right, left = points[topology.RIGHT_EYE_OUTER, :2], points[topology.LEFT_EYE_OUTER, :2]
    angle = math.atan2(left[1] - right[1], left[0] - right[0])
    cos, sin = math.cos(angle), math.sin(angle)
    xy = points[:, :2].astype(np.float64)
    upright = xy @ np.array([[cos, -sin], [sin, cos]])  # rotate by -angle
    low, high = upright.min(0), upright.max(0)
    mid = (low + high) / 2
    cx, cy = mid[0] * cos - mid[1] * sin, mid[0] * sin + mid[1] * cos  # back by +angle
    return FaceRoi(float(cx), float(cy), float(max(high - low)) * ENLARGE, angle)
