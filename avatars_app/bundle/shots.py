"""Shot cuts and steady stretches of one face: which part of an upload becomes the avatar.

A clip may cut between shots or between people. A cut is a frame whose colour histogram differs sharply from
the previous frame's; within a shot, the face must also stay one face (no jump of its position or size, no long
run without it). The longest such stretch is kept; short gaps inside it are filled by interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from realtime.face import topology

CUT_DISTANCE = (
    0.2  # Bhattacharyya distance between consecutive frames' histograms that marks a cut (same-shot motion: ~0.1)
)
JUMP = 0.35  # a face whose centre moves more than this share of its height in one frame is another face
RESIZE = 1.35  # ...or whose height changes by more than this factor
_THUMB = 64  # histograms are taken on a thumbnail this wide: cheap, and blind to noise


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """A normalised hue/saturation histogram of a thumbnail of the frame."""
    height, width = rgb.shape[:2]
    thumb = cv2.resize(np.ascontiguousarray(rgb), (_THUMB, max(1, round(_THUMB * height / width))), cv2.INTER_AREA)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)


def is_cut(previous: np.ndarray | None, current: np.ndarray) -> bool:
    """Whether the histograms of two consecutive frames belong to different shots."""
    if previous is None:
        return False
    return cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA) > CUT_DISTANCE


@dataclass(frozen=True)
class Span:
    """Frames [start, end) showing one face steadily; ``ended_by`` says why it stopped: "cut", "jump",
    "no face" or "end"."""

    start: int
    end: int
    ended_by: str

    @property
    def length(self) -> int:
        return self.end - self.start


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    ha, hb = float(topology.face_height(a)), float(topology.face_height(b))
    moved = float(np.linalg.norm(a[:, :2].mean(0) - b[:, :2].mean(0)))
    return moved <= JUMP * max(ha, hb) and max(ha, hb) <= RESIZE * max(min(ha, hb), 1.0)


def steady_spans(points: list[np.ndarray | None], cuts: set[int], max_gap: int) -> list[Span]:
    """Split a clip's per-frame landmarks (None where no face) into spans of one steady face: at cuts, at jumps
    of the face, and at runs of more than ``max_gap`` frames without a face. Spans begin and end on a face."""
    spans: list[Span] = []
    start: int | None = None
    last: int | None = None  # the last frame of the current span with a face

    def close(reason: str) -> None:
        nonlocal start
        if start is not None and last is not None:
            spans.append(Span(start, last + 1, reason))
        start = None

    for index, found in enumerate(points):
        if index in cuts:
            close("cut")
        if found is None:
            if start is not None and last is not None and index - last > max_gap:
                close("no face")
            continue
        if start is not None and last is not None and not _same_face(points[last], found):
            close("jump")
        if start is None:
            start = index
        last = index
    close("end")
    return spans


def fill_gaps(points: list[np.ndarray | None]) -> np.ndarray:
    """(N, 468, D) landmarks with the frames that had none interpolated linearly between their neighbours
    (held at the ends). At least one frame must have points."""
    known = [i for i, p in enumerate(points) if p is not None]
    stack = np.stack([points[i] for i in known]).astype(np.float32)
    if len(known) == len(points):
        return stack
    flat = stack.reshape(len(known), -1)
    out = np.empty((len(points), flat.shape[1]), np.float32)
    for column in range(flat.shape[1]):
        out[:, column] = np.interp(np.arange(len(points)), known, flat[:, column])
    return out.reshape(len(points), *stack.shape[1:])
