"""Frames made from scikit-image's astronaut portrait (public-domain NASA photo, shipped in the package).

The demo avatar, the build benchmark and the tests all film this one real face; placing it with a known
affine transform tells exactly where its face is in every frame.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from realtime.avatar.format import Box

# Measured on the 512×512 portrait: the face's skin from hairline to chin and cheek to cheek, and the centre of
# the lips. The frontal cascade's own box there is (177, 66)–(272, 161).
ASTRONAUT_FACE: Box = (180, 70, 270, 175)
ASTRONAUT_MOUTH = (224.0, 147.0)
BACKGROUND = (96, 104, 112)


@cache
def astronaut() -> np.ndarray:
    from skimage import data

    image = data.astronaut()
    image.setflags(write=False)
    return image


def placement(centre: tuple[float, float], scale: float, angle: float = 0.0) -> np.ndarray:
    """2×3 affine matrix that puts the portrait's face centre at ``centre``, scaled and turned by ``angle``
    degrees (counter-clockwise)."""
    x1, y1, x2, y2 = ASTRONAUT_FACE
    matrix = cv2.getRotationMatrix2D(((x1 + x2) / 2, (y1 + y2) / 2), angle, scale)
    matrix[:, 2] += np.asarray(centre) - np.asarray(((x1 + x2) / 2, (y1 + y2) / 2))
    return matrix


def render(
    size: tuple[int, int], matrices: list[np.ndarray], background: tuple[int, int, int] = BACKGROUND
) -> np.ndarray:
    """A ``size`` = (width, height) RGB frame with one portrait per matrix, later ones drawn on top."""
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = background
    portrait = astronaut()
    for matrix in matrices:
        cv2.warpAffine(portrait, matrix, (width, height), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
    return frame


def map_box(matrix: np.ndarray, box: Box) -> Box:
    """The axis-aligned box around ``box`` after the affine transform."""
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], dtype=float) @ matrix.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    return round(low[0]), round(low[1]), round(high[0]), round(high[1])


def map_point(matrix: np.ndarray, point: tuple[float, float]) -> tuple[float, float]:
    x, y = matrix @ np.array([point[0], point[1], 1.0])
    return float(x), float(y)
