"""From face-mesh landmarks to the boxes the lip-sync engines use."""

from __future__ import annotations

import numpy as np

from realtime.face import topology

from .format import Box

# The face box runs from the brows to just below the chin (its detector's box, padded down so the generated
# lower half includes the chin): from the face oval's top, cut 15 % of the face height lower...
FACE_TOP_CUT = 0.15
CHIN_PAD = 0.08  # ...to 8 % below the chin.
# The mouth region: the lips' corners widened by this share of the mouth width on each side, and a band of
# this many mouth widths tall centred on the lip line (room for the jaw to drop).
MOUTH_SIDE_PAD = 0.1
MOUTH_HEIGHT = 0.5
_MIN_SIDE = 2


def _clip(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
    left = int(np.clip(round(x1), 0, width - _MIN_SIDE))
    top = int(np.clip(round(y1), 0, height - _MIN_SIDE))
    right = int(np.clip(round(x2), left + _MIN_SIDE, width))
    bottom = int(np.clip(round(y2), top + _MIN_SIDE, height))
    return left, top, right, bottom


def face_box(points: np.ndarray, width: int, height: int) -> Box:
    """The square face box (brows to below the chin) of one frame's (468, 2) points, inside the frame."""
    oval = points[list(topology.FACE_OVAL), :2]
    x1, x2 = float(oval[:, 0].min()), float(oval[:, 0].max())
    top, chin = float(oval[:, 1].min()), float(points[topology.CHIN, 1])
    face = chin - top
    y1, y2 = top + FACE_TOP_CUT * face, chin + CHIN_PAD * face
    side = max(x2 - x1, y2 - y1)
    cx = (x1 + x2) / 2
    return _clip(cx - side / 2, y2 - side, cx + side / 2, y2, width, height)


def mouth_box(points: np.ndarray, width: int, height: int) -> Box:
    """The mouth region of one frame's points: corner to corner plus a margin, centred on the lip line."""
    left, right = points[topology.MOUTH_LEFT, :2], points[topology.MOUTH_RIGHT, :2]
    lips = points[list(topology.OUTER_LIPS), :2]
    mouth = float(np.linalg.norm(right - left))
    cx = float(lips[:, 0].min() + lips[:, 0].max()) / 2
    cy = float(points[topology.UPPER_LIP_MID, 1] + points[topology.LOWER_LIP_MID, 1]) / 2
    half_w = (float(lips[:, 0].max() - lips[:, 0].min()) / 2) + MOUTH_SIDE_PAD * mouth
    half_h = MOUTH_HEIGHT * mouth / 2
    return _clip(cx - half_w, cy - half_h, cx + half_w, cy + half_h, width, height)


def boxes_from_landmarks(landmarks: np.ndarray, width: int, height: int) -> tuple[list[Box], list[Box]]:
    """Face and mouth boxes for every frame of (N, 468, 2) landmarks."""
    return (
        [face_box(p, width, height) for p in landmarks],
        [mouth_box(p, width, height) for p in landmarks],
    )
