"""Indices into MediaPipe's 468-point face mesh, and small measures of a face taken from them.

Measures are in units of face height (forehead top 10 to chin 152), so they compare across frame sizes and
distances from the camera.
"""

from __future__ import annotations

import numpy as np

# Lip contours, each ordered from the right mouth corner (61) round to the left (291).
OUTER_LIPS_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
OUTER_LIPS_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
INNER_LIPS_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
INNER_LIPS_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
# Closed loops: lower lip left to right, then the upper lip back.
OUTER_LIPS = OUTER_LIPS_LOWER + OUTER_LIPS_UPPER[-2:0:-1]
INNER_LIPS = INNER_LIPS_LOWER + INNER_LIPS_UPPER[-2:0:-1]

UPPER_LIP_MID = 13  # inner edge of the upper lip, centre
LOWER_LIP_MID = 14  # inner edge of the lower lip, centre
MOUTH_LEFT = 61  # the image-left corner (the subject's right)
MOUTH_RIGHT = 291
FACE_TOP = 10
CHIN = 152
NOSE_TIP = 1

# Eye contours (closed loops), the subject's right eye (image left) and left eye.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_TOP, RIGHT_EYE_BOTTOM = 33, 133, 159, 145
LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_TOP, LEFT_EYE_BOTTOM = 263, 362, 386, 374

# Face outline (closed loop from the forehead clockwise), for masks and boxes.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip


def _distance(pts: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(pts[..., a, :2] - pts[..., b, :2], axis=-1)


def face_height(pts: np.ndarray) -> np.ndarray | float:
    """Forehead top to chin, in the points' pixels; ``pts`` is (468, 2|3) or (N, 468, 2|3)."""
    return _distance(pts, FACE_TOP, CHIN)


def mouth_opening(pts: np.ndarray) -> np.ndarray | float:
    """Gap between the inner lips at the centre, in face heights (about 0.02 closed, 0.1 wide open)."""
    return _distance(pts, UPPER_LIP_MID, LOWER_LIP_MID) / np.maximum(face_height(pts), 1e-6)


def mouth_width(pts: np.ndarray) -> np.ndarray | float:
    """Corner to corner, in face heights."""
    return _distance(pts, MOUTH_LEFT, MOUTH_RIGHT) / np.maximum(face_height(pts), 1e-6)


def eye_opening(pts: np.ndarray) -> np.ndarray | float:
    """Mean lid gap of both eyes over their widths (about 0.25 open, under 0.1 closed)."""
    right = _distance(pts, RIGHT_EYE_TOP, RIGHT_EYE_BOTTOM) / np.maximum(
        _distance(pts, RIGHT_EYE_OUTER, RIGHT_EYE_INNER), 1e-6
    )
    left = _distance(pts, LEFT_EYE_TOP, LEFT_EYE_BOTTOM) / np.maximum(
        _distance(pts, LEFT_EYE_OUTER, LEFT_EYE_INNER), 1e-6
    )
    return (right + left) / 2
