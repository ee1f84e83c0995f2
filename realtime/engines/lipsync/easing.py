"""Smooth weight curves shared by the lip-sync engines: masks and warps built from them have no visible edges."""

from __future__ import annotations

import numpy as np


def smoothstep(t: np.ndarray | float) -> np.ndarray:
    """0 for t ≤ 0, 1 for t ≥ 1, an S-curve with zero slope at both ends in between."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def bump(t: np.ndarray) -> np.ndarray:
    """1 at 0, falling smoothly to exactly 0 at |t| = 1 and staying 0 beyond (a cos² window)."""
    return np.where(np.abs(t) < 1, np.cos(np.clip(t, -1, 1) * (np.pi / 2)) ** 2, 0.0)
