"""Find frontal faces in a frame with the Haar cascade that ships inside opencv-python-headless 4.x.

The cascade needs no weights download. Faces are searched on a downscaled grey copy; boxes come back in the
frame's own pixels. Searching the whole frame tries every face size (about 25 scales at a 1.1 step); searching
near a known face tries only sizes close to it in a small region, which is several times cheaper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.avatar.format import Box

CASCADE_FILE = "haarcascade_frontalface_default.xml"
_WINDOW = 24  # the cascade's training window: smaller faces cannot be found at any scale
NEAR_MARGIN = 0.5  # a search near a face covers the box grown by this share of its size on every side
NEAR_SIZES = (0.75, 1.35)  # ... for faces this much smaller or larger than it


def cascade_path() -> Path:
    path = Path(cv2.data.haarcascades) / CASCADE_FILE
    if not path.exists():  # opencv-python 5.x wheels dropped the cascades (see requirements.txt pin)
        raise RuntimeError(f"{path} is missing: install opencv-python-headless<5, whose wheels carry it")
    return path


class FaceDetector:
    """Boxes of the frontal faces in an RGB frame. One instance per build: the cascade loads in ~30 ms."""

    def __init__(self, detect_side: int, scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        self.detect_side = detect_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._cascade = cv2.CascadeClassifier(str(cascade_path()))

    def smallest_face(self, width: int, height: int) -> int:
        """The smallest face side, in frame pixels, this detector can find in a width×height frame."""
        return round(_WINDOW / self._scale(width, height))

    def _scale(self, width: int, height: int) -> float:
        return min(1.0, self.detect_side / max(width, height))

    def detect(self, frame: np.ndarray, near: Box | None = None) -> list[Box]:
        """Faces in ``frame`` (H×W×3 RGB; a memory-mapped frame is read only where searched), anywhere or
        only near ``near`` at about its size."""
        height, width = frame.shape[:2]
        scale = self._scale(width, height)
        left, top, right, bottom = 0, 0, width, height
        sizes: dict[str, Any] = {"minSize": (_WINDOW, _WINDOW)}
        if near is not None:
            x1, y1, x2, y2 = near
            side = max(x2 - x1, y2 - y1)
            margin = round(side * NEAR_MARGIN)
            left, top = max(0, x1 - margin), max(0, y1 - margin)
            right, bottom = min(width, x2 + margin), min(height, y2 + margin)
            smallest = max(_WINDOW, int(side * scale * NEAR_SIZES[0]))
            largest = int(side * scale * NEAR_SIZES[1]) + 1
            sizes = {"minSize": (smallest, smallest), "maxSize": (largest, largest)}
        grey = cv2.cvtColor(np.ascontiguousarray(frame[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            target = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            grey = cv2.resize(grey, target, interpolation=cv2.INTER_AREA)
        found = self._cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, **sizes
        )
        boxes = []
        for x, y, w, h in found if len(found) else []:
            x1, y1 = left + round(x / scale), top + round(y / scale)
            boxes.append((x1, y1, x1 + round(w / scale), y1 + round(h / scale)))
        return boxes
