"""Where a face-to-face model (Wav2Lip) cuts the face out of a frame, and the cut itself.

Wav2Lip was trained on S3FD detector boxes padded 10 px downwards: a box from
about the eyebrows to just below the chin, so that the lower half of the crop
(which the model redraws) holds the mouth and jaw and the upper half the eyes
and nose. From the 468-point face mesh the same box is: the mesh's width,
from a fifth of the way down the face (forehead → chin) to 5 % of a face
height below the chin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

FOREHEAD, CHIN = 10, 152  # face-mesh points at the top of the forehead and the bottom of the chin
TOP_FRACTION = 0.2  # the box starts this far down from the forehead, in face heights (eyebrow level)
CHIN_PAD = 0.05  # and ends this far below the chin


class FaceBoxes(Protocol):
    """What the box needs from an avatar: a stored face box per frame (and its landmarks, when it has them)."""

    face_boxes: np.ndarray


def box_from_landmarks(points: np.ndarray) -> tuple[int, int, int, int]:
    """The Wav2Lip face box (x1, y1, x2, y2) of one face mesh, ``points`` (468, 2+) in frame pixels."""
    xy = np.asarray(points, dtype=np.float32)[:, :2]
    top, chin = float(xy[FOREHEAD, 1]), float(xy[CHIN, 1])
    height = max(chin - top, 1.0)
    x1, x2 = float(xy[:, 0].min()), float(xy[:, 0].max())
    return round(x1), round(top + TOP_FRACTION * height), round(x2), round(chin + CHIN_PAD * height)


def face_box(avatar: FaceBoxes, index: int) -> tuple[int, int, int, int]:
    """The face box of frame ``index``: from the bundle's landmarks when it has them, else its stored box."""
    landmarks = getattr(avatar, "landmarks", None)
    if landmarks is not None:
        return box_from_landmarks(landmarks[index])
    x1, y1, x2, y2 = (int(v) for v in avatar.face_boxes[index])
    return x1, y1, x2, y2


def crop_faces(frames: Sequence[np.ndarray], boxes: Sequence[Sequence[int]], size: int) -> np.ndarray:
    """(B, size, size, 3) uint8: each box cut from its frame (edges replicated where it leaves the frame)."""
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for k, (frame, (x1, y1, x2, y2)) in enumerate(zip(frames, boxes, strict=True)):
        height, width = frame.shape[:2]
        cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        cut = cv2.copyMakeBorder(
            np.ascontiguousarray(frame[cy1:cy2, cx1:cx2]),
            cy1 - y1,
            y2 - cy2,
            cx1 - x1,
            x2 - cx2,
            cv2.BORDER_REPLICATE,
        )
        out[k] = cv2.resize(cut, (size, size), interpolation=cv2.INTER_AREA)
    return out
