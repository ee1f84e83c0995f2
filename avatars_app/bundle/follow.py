"""The chosen face in every frame: frames searched whole keep their box, the others are searched only near
where the face must be, interpolated between the whole-frame finds around them."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

import numpy as np

from realtime.avatar.format import Box

from .faces import FaceDetector

BRACKET = 3  # interpolate between two anchors up to this many reaches apart (a whole-frame search may miss)


def _prior(index: int, anchors: list[int], boxes: np.ndarray, reach: int) -> Box | None:
    """Where the face should be at ``index``, from the anchor frames around it; None when none is near."""
    after = bisect.bisect_left(anchors, index)
    before = after - 1
    if before >= 0 and after < len(anchors) and anchors[after] - anchors[before] <= BRACKET * reach:
        share = (index - anchors[before]) / (anchors[after] - anchors[before])
        box = boxes[before] + share * (boxes[after] - boxes[before])
    elif before >= 0 and index - anchors[before] <= reach:
        box = boxes[before]
    elif after < len(anchors) and anchors[after] - index <= reach:
        box = boxes[after]
    else:
        return None
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return x1, y1, x2, y2


def _centre_distance(a: Box, b: Box) -> float:
    return float(np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2))


def follow_face(
    frames: Iterable[np.ndarray],
    frame_count: int,
    anchors: dict[int, Box],
    detector: FaceDetector,
    reach: int,
    progress: Callable[[float], None],
) -> list[Box | None]:
    """Per-frame box of the face found at ``anchors`` (frame index → box), None where it is not found.
    A frame is searched when an anchor lies within ``reach`` frames of it."""
    order = sorted(anchors)
    anchor_boxes = np.array([anchors[i] for i in order], dtype=float).reshape(-1, 4)
    result: list[Box | None] = []
    for index, frame in enumerate(frames):
        if index in anchors:
            result.append(anchors[index])
        else:
            prior = _prior(index, order, anchor_boxes, reach)
            found = detector.detect(frame, near=prior) if prior is not None else []
            result.append(min(found, key=lambda box: _centre_distance(box, prior)) if found else None)
        progress((index + 1) / frame_count)
    return result
