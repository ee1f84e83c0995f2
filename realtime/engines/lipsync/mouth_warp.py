"""The first weights-free lip-sync engine: warp the avatar's own mouth to the audio (now ``mouth_warp``).

Per frame: audio → a mouth shape (visemes.py), then a smooth displacement field
around the bundle's mouth box drops the lower lip and jaw and moves the corners
out or in, and the opened gap is shaded dark. Only a small region around the
mouth is touched, so a 512-px frame costs well under a millisecond and many
25 fps sessions fit on two cores. No state is kept between calls: requests of
many sessions share one batch, and smoothness comes from the audio features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .base import LipSyncEngine, LipSyncRequest
from .easing import bump, smoothstep
from .visemes import MouthShape, mouth_shape

JAW_DROP = 0.5  # lower-lip travel at jaw 1.0, in mouth-box heights
CORNER_TRAVEL = 0.15  # travel of each corner at stretch ±1, in mouth-box widths
INNER_MOUTH_RGB = np.array([52, 18, 22], np.float32)
SHADE = 0.8  # how dark the opened gap gets at its centre


def _soft_ramp(a: np.ndarray) -> np.ndarray:
    """0 below 0, then ``a`` itself up to 0.7, bending onto 1 by 1.3 (a smooth minimum of a and 1; slope ≤ 1)."""
    k = 0.3
    bend = a - (a - 1 + k) ** 2 / (4 * k)
    return np.where(a <= 0, 0.0, np.where(a < 1 - k, a, np.where(a > 1 + k, 1.0, bend)))


def warp_mouth(frame: np.ndarray, box: Sequence[int], shape: MouthShape) -> np.ndarray:
    """A copy of ``frame`` (H×W×3 uint8) with the mouth in ``box`` (x1, y1, x2, y2) opened to ``shape``."""
    out = np.array(frame)
    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box)
    box_w, box_h = max(x2 - x1, 4), max(y2 - y1, 2)
    cx, lip_line = (x1 + x2) / 2, (y1 + y2) / 2
    drop = JAW_DROP * box_h * shape.jaw
    corner = CORNER_TRAVEL * box_w * shape.stretch

    # Below the lip line each column drops by its own amount (most at the centre): the lip line's pixels are held
    # across the opened gap, lower lip and chin move down together, and below the chin the skin relaxes back to
    # rest over `relax` rows. No row moves faster than the rows it passes, so the map never folds.
    chin = y2 + 0.6 * box_h + drop
    relax = 1.2 * box_h + drop
    reach_x = 1.4 * box_w
    rx0, rx1 = max(0, math.floor(cx - reach_x)), min(width, math.ceil(cx + reach_x) + 1)
    ry0, ry1 = max(0, math.floor(y1 - 0.6 * box_h)), min(height, math.ceil(chin + relax) + 1)
    xs = np.arange(rx0, rx1, dtype=np.float32)
    ys = np.arange(ry0, ry1, dtype=np.float32)
    below = (ys - lip_line)[:, None]

    column_drop = drop * bump((xs - cx) / (0.85 * box_w))[None, :]
    held = _soft_ramp(below / np.maximum(column_drop, 1e-3))
    settle = 1 - smoothstep((ys - chin) / relax)[:, None]
    dy = column_drop * np.where(ys[:, None] < chin, held, settle)

    u = (xs - cx) / (box_w / 2)
    corner_cols = u * np.exp(-(u**2) / 2) * bump((xs - cx) / reach_x)
    corner_cols /= np.exp(-0.5) * bump(np.array(0.5 * box_w / reach_x))  # = 1 at the corners
    corner_rows = bump((below - 0.5 * drop) / (0.9 * box_h + 0.5 * drop))
    dx = corner * corner_rows * corner_cols[None, :]

    map_x = (xs[None, :] - dx).astype(np.float32)
    map_y = (ys[:, None] - dy).astype(np.float32)
    region = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)

    # The gap between the lips: a lens from corner to corner inside the held rows, darkest in its middle and
    # fading at its edges (a hard-edged hole reads as a sticker).
    lens = np.abs(np.cos(np.clip((xs - cx) / max(0.48 * box_w + 0.8 * corner, 1.0), -1, 1) * (np.pi / 2)))
    opening = column_drop * lens[None, :]
    edge = np.maximum(1.5, 0.3 * opening)
    from_top = below + 0.5
    inside = smoothstep(from_top / edge) * smoothstep((opening - from_top) / edge)
    shade = (SHADE * inside * smoothstep(opening / 3))[..., None]
    region += shade * (INNER_MOUTH_RGB - region)
    out[ry0:ry1, rx0:rx1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


class MouthWarpLipSync(LipSyncEngine):
    """The earlier default: no weights, no GPU. Silent frames come back as exact copies of the avatar frame."""

    name = "mouth_warp"

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        return [self.render(request) for request in requests]

    def render(self, request: LipSyncRequest) -> np.ndarray:
        avatar, index = request.avatar, request.frame_index
        frame = avatar.frames[index]
        shape = mouth_shape(request.audio, request.mel)
        if shape.is_closed:
            return np.array(frame)
        return warp_mouth(frame, avatar.mouth_boxes[index], shape)
