"""Steady face boxes over time: drop outliers, fill gaps, smooth.

Cascade boxes jump by a few pixels and a few percent of their size from frame to frame; pasted back as they
are, a lip-synced mouth would shake. The face of a talking person moves slowly, so a short centred Gaussian
over centre and size removes the jitter without lagging behind real motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from realtime.avatar.format import Box

SMOOTH_SECONDS = 0.06  # Gaussian sigma in time: 1.5 frames at 25 fps
OUTLIER_WINDOW_SECONDS = 0.5  # a box is judged against the median of its neighbours in this window
OUTLIER_SIZE = 0.3  # ... and dropped when its size differs by more than this share
OUTLIER_SHIFT = 0.35  # ... or its centre is off by more than this share of the face size


@dataclass(frozen=True)
class SmoothTrack:
    """Per-frame face centre and size (float pixels) and the runs of frames that had to be filled."""

    cx: np.ndarray
    cy: np.ndarray
    side: np.ndarray
    gaps: list[tuple[int, int]]  # [start, end) frame ranges without a usable detection


def _runs_of_true(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear across gaps, the nearest value before the first and after the last detection."""
    index = np.arange(len(values))
    return np.interp(index, index[valid], values[valid])


def smooth_boxes(boxes: Sequence[Box | None], fps: float) -> SmoothTrack:
    """``boxes`` must contain at least one detection."""
    count = len(boxes)
    raw = np.full((count, 3), np.nan)
    for i, box in enumerate(boxes):
        if box is not None:
            x1, y1, x2, y2 = box
            raw[i] = ((x1 + x2) / 2, (y1 + y2) / 2, ((x2 - x1) * (y2 - y1)) ** 0.5)
    valid = ~np.isnan(raw[:, 0])
    if not valid.any():
        raise ValueError("smooth_boxes needs at least one detected box")

    window = max(3, int(OUTLIER_WINDOW_SECONDS * fps) | 1)  # odd, so the median is centred
    reference = np.stack([median_filter(_fill(raw[:, k], valid), size=window, mode="nearest") for k in range(3)], 1)
    size_off = np.abs(raw[:, 2] - reference[:, 2]) > OUTLIER_SIZE * reference[:, 2]
    shift_off = np.hypot(raw[:, 0] - reference[:, 0], raw[:, 1] - reference[:, 1]) > OUTLIER_SHIFT * reference[:, 2]
    keep = valid & ~size_off & ~shift_off
    if not keep.any():
        keep = valid

    sigma = max(1.0, SMOOTH_SECONDS * fps)
    cx, cy, side = (gaussian_filter1d(_fill(raw[:, k], keep), sigma, mode="nearest") for k in range(3))
    return SmoothTrack(cx=cx, cy=cy, side=side, gaps=_runs_of_true(~keep))
