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
from dataclasses import dataclass

import cv2
import numpy as np

from .base import LipSyncEngine, LipSyncRequest
from .easing import bump, smoothstep
from .visemes import MouthShape, mouth_shapes

JAW_DROP = 0.5  # lower-lip travel at jaw 1.0, in mouth-box heights
CORNER_TRAVEL = 0.15  # travel of each corner at stretch ±1, in mouth-box widths
INNER_MOUTH_RGB = np.array([52, 18, 22], np.float32)
SHADE = 0.8  # how dark the opened gap gets at its centre


def _soft_ramp(a: np.ndarray) -> np.ndarray:
    """0 below 0, then ``a`` itself up to 0.7, bending onto 1 by 1.3 (a smooth minimum of a and 1; slope ≤ 1)."""
    k = 0.3
    out = a - 1 + k  # in place from here: one (B, H, W) array instead of eight
    np.square(out, out=out)
    out /= 4 * k
    np.subtract(a, out, out=out)
    np.copyto(out, 1.0, where=a > 1 + k)
    np.copyto(out, a, where=a < 1 - k)
    np.copyto(out, 0.0, where=a <= 0)
    return out


def warp_mouth(frame: np.ndarray, box: Sequence[int], shape: MouthShape) -> np.ndarray:
    """A copy of ``frame`` (H×W×3 uint8) with the mouth in ``box`` (x1, y1, x2, y2) opened to ``shape``."""
    return warp_mouths([frame], [box], [shape])[0]


@dataclass(frozen=True)
class _Warp:
    """One frame's mouth box, how far its jaw drops and corners move, and the region that touches (frame pixels)."""

    box_w: float
    box_h: float
    cx: float
    lip_line: float
    drop: float
    corner: float
    chin: float
    relax: float
    reach_x: float
    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def of(cls, frame_shape: tuple[int, ...], box: Sequence[int], shape: MouthShape) -> _Warp:
        height, width = frame_shape[:2]
        x1, y1, x2, y2 = (int(v) for v in box)
        box_w, box_h = max(x2 - x1, 4), max(y2 - y1, 2)
        cx = (x1 + x2) / 2
        drop = JAW_DROP * box_h * shape.jaw
        # Below the lip line each column drops by its own amount (most at the centre): the lip line's pixels are
        # held across the opened gap, lower lip and chin move down together, and below the chin the skin relaxes
        # back to rest over `relax` rows. No row moves faster than the rows it passes, so the map never folds.
        chin = y2 + 0.6 * box_h + drop
        relax = 1.2 * box_h + drop
        reach_x = 1.4 * box_w
        return cls(
            box_w=box_w,
            box_h=box_h,
            cx=cx,
            lip_line=(y1 + y2) / 2,
            drop=drop,
            corner=CORNER_TRAVEL * box_w * shape.stretch,
            chin=chin,
            relax=relax,
            reach_x=reach_x,
            x0=max(0, math.floor(cx - reach_x)),
            y0=max(0, math.floor(y1 - 0.6 * box_h)),
            x1=min(width, math.ceil(cx + reach_x) + 1),
            y1=min(height, math.ceil(chin + relax) + 1),
        )


def warp_mouths(
    frames: Sequence[np.ndarray], boxes: Sequence[Sequence[int]], shapes: Sequence[MouthShape]
) -> list[np.ndarray]:
    """``warp_mouth`` for many frames in one vectorised pass: each frame's region is laid on a window as large as
    the largest, anchored at its own corner. The displacement and the shading are exactly zero outside a frame's
    own region, so the extra rows and columns are plain copies and every frame comes out as it would alone."""
    outs = [np.array(frame) for frame in frames]
    warps = [_Warp.of(f.shape, box, shape) for f, box, shape in zip(frames, boxes, shapes, strict=True)]
    height = max(w.y1 - w.y0 for w in warps)
    width = max(w.x1 - w.x0 for w in warps)
    if height <= 0 or width <= 0:
        return outs

    def param(name: str) -> np.ndarray:
        return np.array([getattr(w, name) for w in warps], np.float32)[:, None, None]

    box_w, box_h, cx, lip_line, drop, corner, chin, relax, reach_x = map(
        param, ("box_w", "box_h", "cx", "lip_line", "drop", "corner", "chin", "relax", "reach_x")
    )
    x0, y0 = (np.array([getattr(w, name) for w in warps], np.float32)[:, None] for name in ("x0", "y0"))
    xs = (x0 + np.arange(width, dtype=np.float32))[:, None, :]  # (B, 1, W)
    ys = (y0 + np.arange(height, dtype=np.float32))[:, :, None]  # (B, H, 1)
    below = ys - lip_line

    column_drop = drop * bump((xs - cx) / (0.85 * box_w))
    held = _soft_ramp(below / np.maximum(column_drop, 1e-3))
    settle = 1 - smoothstep((ys - chin) / relax)
    dy = column_drop * np.where(ys < chin, held, settle)

    u = (xs - cx) / (box_w / 2)
    corner_cols = u * np.exp(-(u**2) / 2) * bump((xs - cx) / reach_x)
    corner_cols /= np.exp(-0.5) * bump(0.5 * box_w / reach_x)  # = 1 at the corners
    corner_rows = bump((below - 0.5 * drop) / (0.9 * box_h + 0.5 * drop))
    dx = corner * corner_rows * corner_cols

    map_x = (xs - dx).astype(np.float32, copy=False)
    map_y = (ys - dy).astype(np.float32, copy=False)
    regions = np.empty((len(warps), height, width, 3), np.uint8)
    for frame, mx, my, into in zip(frames, map_x, map_y, regions, strict=True):
        cv2.remap(frame, mx, my, cv2.INTER_LINEAR, dst=into, borderMode=cv2.BORDER_REPLICATE)

    # The gap between the lips: a lens from corner to corner inside the held rows, darkest in its middle and
    # fading at its edges (a hard-edged hole reads as a sticker).
    lens = np.abs(np.cos(np.clip((xs - cx) / np.maximum(0.48 * box_w + 0.8 * corner, 1.0), -1, 1) * (np.pi / 2)))
    opening = column_drop * lens
    edge = np.maximum(1.5, 0.3 * opening)
    # Only rows inside the opening get shaded (the rest stay the warped pixels): a band of each window from the lip
    # line down by the drop.
    top = np.floor(lip_line[:, 0, 0] - 0.5) - ys[:, 0, 0]
    bottom = np.ceil(lip_line[:, 0, 0] + drop[:, 0, 0] - 0.5) - ys[:, 0, 0] + 1
    band = int(min(max(bottom - top), height))
    rows = np.clip(top, 0, height - band).astype(np.intp)[:, None] + np.arange(band)  # (B, band)
    each = np.arange(len(warps))[:, None]
    from_top = ys[each, rows] - lip_line + 0.5
    inside = smoothstep(from_top / edge) * smoothstep((opening - from_top) / edge)
    shade = (SHADE * inside * smoothstep(opening / 3))[..., None]
    shaded = regions[each, rows].astype(np.float32)
    shaded += shade * (INNER_MOUTH_RGB - shaded)
    shaded += 0.5
    regions[each, rows] = np.clip(shaded, 0, 255, out=shaded)
    for out, warp, region in zip(outs, warps, regions, strict=True):
        out[warp.y0 : warp.y1, warp.x0 : warp.x1] = region[: warp.y1 - warp.y0, : warp.x1 - warp.x0]
    return outs


class MouthWarpLipSync(LipSyncEngine):
    """The earlier default: no weights, no GPU. Silent frames come back as exact copies of the avatar frame; the
    others of a batch are warped in one vectorised pass (``warp_mouths``)."""

    name = "mouth_warp"

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        rows = mouth_shapes([r.audio for r in requests], np.stack([r.mel for r in requests]))
        shapes = [MouthShape(*map(float, row)) for row in rows]
        frames = [r.avatar.frames[r.frame_index] for r in requests]
        moving = [k for k, shape in enumerate(shapes) if not shape.is_closed]
        warped: dict[int, np.ndarray] = {}
        if moving:
            boxes = [requests[k].avatar.mouth_boxes[requests[k].frame_index] for k in moving]
            warped = dict(
                zip(moving, warp_mouths([frames[k] for k in moving], boxes, [shapes[k] for k in moving]), strict=True)
            )
        return [warped[k] if k in warped else np.array(frame) for k, frame in enumerate(frames)]
