"""An idle loop synthesised from one portrait, so an avatar built from a photo never looks frozen.

Three motions, each slow and small, that people make while they listen:

- the head sways (a fraction of a degree of roll, a pixel or two of drift) about a pivot below the chin;
- breathing lifts the head and shoulders a little, about once every four seconds;
- the eyes blink: the skin above each upper lid slides down over the eye until the lash line meets the lower lid
  (about a quarter of a second, quick to close and slower to open), from the eye contours of the face mesh.

The frames come with their landmarks (moved by the same maps), so lip-sync places the mouth on each one. The loop
is played ping-pong, so it needs no seam between its last and first frame: every motion is smooth in both
directions.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import cv2
import numpy as np

from realtime.engines.lipsync.easing import smoothstep
from realtime.face import topology

SWAY_DEGREES = 0.7
DRIFT = 0.012  # face heights
BREATH = 0.008  # face heights of lift at the top of a breath
BREATH_SECONDS = 4.0
BLINK_SECONDS = 0.26
BLINK_EVERY = 3.4  # seconds between blinks, on average
LOOP_SECONDS = 3.0  # played ping-pong: a 6-s cycle


def blink_closure(t: float, starts: list[float]) -> float:
    """0 (open) … 1 (closed) at time ``t``: a fast close (40 % of the blink) and a slower reopening."""
    for start in starts:
        phase = (t - start) / BLINK_SECONDS
        if 0 <= phase < 0.4:
            return float(smoothstep(phase / 0.4))
        if 0.4 <= phase < 1:
            return float(1 - smoothstep((phase - 0.4) / 0.6))
    return 0.0


def _eye_rows(points: np.ndarray, contour: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns across one eye and, per column, its upper and lower lid rows (from the mesh's eye contour)."""
    eye = points[list(contour), :2]
    corner_a, corner_b = eye[0], eye[8]  # the contour starts at one corner and passes the other halfway
    lower, upper = eye[0:9], np.concatenate([eye[8:], eye[:1]])
    xs = np.linspace(min(corner_a[0], corner_b[0]), max(corner_a[0], corner_b[0]), 24)
    lower_rows = np.interp(xs, *lower[np.argsort(lower[:, 0])].T)
    upper_rows = np.interp(xs, *upper[np.argsort(upper[:, 0])].T)
    return xs, np.minimum(upper_rows, lower_rows), np.maximum(upper_rows, lower_rows)


def _across(columns: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """How much of the lid's travel each column gets: all of it across the eye, none just beyond its corners."""
    half = (xs[-1] - xs[0]) / 2
    return 1 - smoothstep((np.abs(columns - (xs[0] + xs[-1]) / 2) - 0.85 * half) / (0.4 * half))


def close_eyes(image: np.ndarray | None, points: np.ndarray, closure: float) -> tuple[np.ndarray | None, np.ndarray]:
    """``image`` with both eyes closed by ``closure`` (0..1), and the landmarks with the upper lids moved;
    ``image`` None moves the landmarks only."""
    if closure <= 0.01:
        return image, points
    out = None if image is None else image.copy()
    moved = points.copy()
    for contour in (topology.RIGHT_EYE, topology.LEFT_EYE):
        xs, top, bottom = _eye_rows(points, contour)
        eye_height = float(max((bottom - top).max(), 1.0))
        bottom = bottom + 0.3 * eye_height  # the mesh's lower lid sits a little above the white's lower edge
        if out is not None:
            _slide_lid(image, out, xs, top, bottom, eye_height, closure)
        for index in contour:
            x, y = points[index, :2]
            lid_top = float(np.interp(x, xs, top))
            lid_bottom = float(np.interp(x, xs, bottom))
            if y < (lid_top + lid_bottom) / 2:  # an upper-lid point comes down with the lid
                span = lid_bottom - lid_top
                moved[index, 1] = y + closure * span * float(_across(np.array([x]), xs)[0])
    return out, moved


def _slide_lid(
    image: np.ndarray,
    out: np.ndarray,
    xs: np.ndarray,
    top: np.ndarray,
    bottom: np.ndarray,
    eye_height: float,
    closure: float,
) -> None:
    """Into ``out``: the skin above one eye slid down over it by ``closure`` of the gap between the lids."""
    height, width = image.shape[:2]
    x0, x1 = int(xs[0] - 0.3 * (xs[-1] - xs[0])), int(xs[-1] + 0.3 * (xs[-1] - xs[0])) + 1
    y0, y1 = int(top.min() - 2.5 * eye_height), int(bottom.max() + 2)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 <= x0 or y1 <= y0:
        return
    gx = np.arange(x0, x1, dtype=np.float32)
    gy = np.arange(y0, y1, dtype=np.float32)[:, None]
    col_top = np.interp(gx, xs, top, left=top[0], right=top[-1])[None, :]
    col_bottom = np.interp(gx, xs, bottom, left=bottom[0], right=bottom[-1])[None, :]
    drop = closure * (col_bottom - col_top) * _across(gx, xs)[None, :]
    # Above the lid the skin stretches down towards it; between the lids it slides over the eye; below, nothing.
    above = smoothstep((gy - (col_top - 2 * eye_height)) / (2 * eye_height))
    weight = np.where(gy <= col_bottom, above, 0.0)
    map_y = (gy - drop * weight).astype(np.float32)
    map_x = np.broadcast_to(gx[None, :], map_y.shape).astype(np.float32)
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class IdleMotion:
    """Per frame of the loop: how closed the eyes are and the head's 2×3 affine map."""

    closures: np.ndarray  # (N,)
    matrices: np.ndarray  # (N, 2, 3)


def idle_motion(points: np.ndarray, seconds: float = 4.0, fps: int = 25, seed: int = 0) -> IdleMotion:
    """The loop's motion for a face with ``points`` (468, 2+) in frame pixels. Every motion starts at rest, so
    frame 0 is the portrait itself."""
    rng = np.random.default_rng(seed)
    count = max(2, round(seconds * fps))
    face_height = float(topology.face_height(points))
    chin = points[topology.CHIN, :2].astype(np.float64)
    pivot = (float(chin[0]), float(chin[1] + 0.4 * face_height))  # about the base of the neck
    blinks = list(np.arange(rng.uniform(0.5, 1.2), seconds - BLINK_SECONDS, BLINK_EVERY) + rng.uniform(0, 0.3))
    closures = np.empty(count, np.float32)
    matrices = np.empty((count, 2, 3), np.float64)
    for k in range(count):
        t = k / fps
        closures[k] = blink_closure(t, blinks)
        sway = 0.7 * math.sin(2 * math.pi * t / 5.3) + 0.3 * math.sin(2 * math.pi * t / 2.9)
        breath = 0.5 - 0.5 * math.cos(2 * math.pi * t / BREATH_SECONDS)
        drift_x = DRIFT * face_height * math.sin(2 * math.pi * t / 6.1)
        drift_y = DRIFT * face_height * 0.5 * math.sin(2 * math.pi * t / 4.7) - BREATH * face_height * breath
        matrices[k] = cv2.getRotationMatrix2D(pivot, SWAY_DEGREES * sway, 1.0 + 0.002 * breath)
        matrices[k, :, 2] += (drift_x, drift_y)
    return IdleMotion(closures, matrices)


def loop_landmarks(points: np.ndarray, motion: IdleMotion) -> np.ndarray:
    """(N, 468, 2) float32: the face's landmarks in every frame of the loop."""
    base = np.asarray(points, np.float32)[:, :2]
    out = np.empty((len(motion.closures), len(base), 2), np.float32)
    for k, (closure, matrix) in enumerate(zip(motion.closures, motion.matrices, strict=True)):
        _, lids = close_eyes(None, base, float(closure))
        out[k] = lids @ matrix[:, :2].T + matrix[:, 2]
    return out


def loop_frame(image: np.ndarray, points: np.ndarray, motion: IdleMotion, index: int) -> np.ndarray:
    """Frame ``index`` of the loop: (H, W, 3) uint8."""
    closed, _ = close_eyes(image, np.asarray(points, np.float32)[:, :2], float(motion.closures[index]))
    height, width = image.shape[:2]
    return cv2.warpAffine(
        closed, motion.matrices[index], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def idle_loop(
    image: np.ndarray, points: np.ndarray, seconds: float = 4.0, fps: int = 25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 frames and (N, 468, 2) float32 landmarks of a ``seconds`` idle loop of ``image``."""
    motion = idle_motion(points, seconds, fps, seed)
    frames = np.stack([loop_frame(image, points, motion, k) for k in range(len(motion.closures))])
    return frames, loop_landmarks(points, motion)


class IdleLoopFrames(Sequence[np.ndarray]):
    """A portrait's idle loop as frames made on demand: what a photo bundle shows, idle or speaking.

    Each frame is made when first asked for and kept (read-only), so every session of the avatar in a process
    shares them; the landmarks of all frames are known up front (cheap: no pixels involved)."""

    def __init__(self, image: np.ndarray, points: np.ndarray, fps: int, seconds: float = LOOP_SECONDS) -> None:
        self._image = np.ascontiguousarray(image)
        self._points = np.asarray(points, np.float32)[:, :2]
        self.motion = idle_motion(self._points, seconds, fps)
        self.landmarks = loop_landmarks(self._points, self.motion)
        self._made: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.landmarks)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]  # IndexError out of range, negative indices allowed
        with self._lock:
            frame = self._made.get(index)
        if frame is None:
            frame = loop_frame(self._image, self._points, self.motion, index)
            frame.setflags(write=False)
            with self._lock:
                frame = self._made.setdefault(index, frame)
        return frame
