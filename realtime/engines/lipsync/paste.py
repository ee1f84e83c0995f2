"""Paste a generated face back into its full frame through a feathered lower-face mask.

A model's face crop never matches the frame's pixels exactly (resampling,
colour drift); replacing the whole box shows a visible square. Only the mouth
and jaw change when speaking, so the mask covers the lower face and fades to
zero well inside the box edges: pixels outside the box are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from .easing import smoothstep


@lru_cache(maxsize=64)
def lower_face_mask(height: int, width: int) -> np.ndarray:
    """(height, width, 1) float32 weights: 1 over mouth and jaw, 0 above the nose and at every box edge."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    rows = smoothstep((ys - 0.45) / 0.17) * (1 - smoothstep((ys - 0.9) / 0.09))  # nose → chin
    cols = smoothstep((xs - 0.04) / 0.16) * (1 - smoothstep((xs - 0.8) / 0.16))
    mask = np.outer(rows, cols).astype(np.float32)[..., None]
    mask.setflags(write=False)
    return mask


def paste_face(frame: np.ndarray, face: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """A copy of ``frame`` with ``face`` (any size, same colour order) resized into ``box`` (x1, y1, x2, y2)."""
    out = np.array(frame)
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        return out
    resized = cv2.resize(face, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mask = lower_face_mask(y2 - y1, x2 - x1)
    # A box reaching past the frame (a face at the edge) is pasted where it overlaps.
    cx1, cy1, cx2, cy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    inner = (slice(cy1 - y1, cy2 - y1), slice(cx1 - x1, cx2 - x1))
    target = out[cy1:cy2, cx1:cx2].astype(np.float32)
    blended = target + mask[inner] * (resized[inner] - target)
    out[cy1:cy2, cx1:cx2] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
