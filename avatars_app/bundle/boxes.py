"""From a face's centre and size to the boxes the lip-sync engines use, and the crops cut from them."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.avatar.format import Box

from .smoothing import SmoothTrack

# The frontal cascade's square ends between mouth and chin. Wav2Lip pads its detector's box downwards so the
# generated lower half includes the chin (its default pads are 0 top, 10 px bottom on ~100-px faces).
CHIN_PAD = 0.15
# Where the mouth sits in the unpadded square (x1, y1, x2, y2 as shares of its side): the lower third, centred.
# Measured on frontal portraits: lips span about 0.27-0.69 across and 0.78-0.92 down.
MOUTH_REGION = (0.2, 0.62, 0.8, 1.0)
_MIN_SIDE = 2


def _clip(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
    left = int(np.clip(round(x1), 0, width - _MIN_SIDE))
    top = int(np.clip(round(y1), 0, height - _MIN_SIDE))
    right = int(np.clip(round(x2), left + _MIN_SIDE, width))
    bottom = int(np.clip(round(y2), top + _MIN_SIDE, height))
    return left, top, right, bottom


def face_boxes(track: SmoothTrack, width: int, height: int) -> list[Box]:
    """The padded face box per frame, inside the frame: what the crops are cut from and pasted back into."""
    half = track.side / 2
    return [
        _clip(cx - h, cy - h, cx + h, cy + h + CHIN_PAD * 2 * h, width, height)
        for cx, cy, h in zip(track.cx, track.cy, half, strict=True)
    ]


def mouth_boxes(track: SmoothTrack, width: int, height: int) -> list[Box]:
    """The mouth region per frame, for engines that move only the mouth."""
    left, top, right, bottom = MOUTH_REGION
    boxes = []
    for cx, cy, side in zip(track.cx, track.cy, track.side, strict=True):
        x0, y0 = cx - side / 2, cy - side / 2
        boxes.append(_clip(x0 + left * side, y0 + top * side, x0 + right * side, y0 + bottom * side, width, height))
    return boxes


def cut_crop(frame: np.ndarray, box: Box, size: int) -> np.ndarray:
    """The box's pixels resized to size×size (Wav2Lip stretches non-square boxes the same way)."""
    x1, y1, x2, y2 = box
    region = frame[y1:y2, x1:x2]
    shrinking = (x2 - x1) > size and (y2 - y1) > size
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
