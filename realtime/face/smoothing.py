"""Temporal smoothing of landmarks: a One-Euro filter (Casiez et al., CHI 2012) per coordinate.

A low-pass whose cutoff rises with speed: still points lose their frame-to-frame jitter, moving lips keep
their timing. Speeds are in face heights per second, so one setting fits every frame size.
"""

from __future__ import annotations

import math

import numpy as np

from .topology import face_height

MIN_CUTOFF_HZ = 2.0  # cutoff for a still face: removes the model's jitter
SPEED_GAIN = 10.0  # Hz of extra cutoff per face height per second of motion: lips moving at speech pace pass
DERIVATIVE_CUTOFF_HZ = 1.0


def _alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau * fps)


class LandmarkSmoother:
    """Feed each frame's (468, D) points in order; ``reset`` at a cut or after the face was lost."""

    def __init__(
        self,
        fps: float,
        min_cutoff: float = MIN_CUTOFF_HZ,
        speed_gain: float = SPEED_GAIN,
    ) -> None:
        self.fps = fps
        self.min_cutoff = min_cutoff
        self.speed_gain = speed_gain
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = points.astype(np.float32)
        if self._value is None:
            self._value, self._speed = points, np.zeros_like(points)
            return points
        scale = max(float(face_height(points)), 1.0)
        speed = (points - self._value) * self.fps / scale
        self._speed = self._speed + _alpha(DERIVATIVE_CUTOFF_HZ, self.fps) * (speed - self._speed)
        cutoff = self.min_cutoff + self.speed_gain * np.abs(self._speed)
        self._value = self._value + _alpha(cutoff, self.fps) * (points - self._value)
        return self._value.astype(np.float32)
