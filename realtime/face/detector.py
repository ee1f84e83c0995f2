"""Face detection with MediaPipe's BlazeFace models: our own anchors, box decoding and overlap merging.

The models predict, for each of a fixed grid of anchors, a score and a box with six key points (eyes, nose
tip, mouth centre, ear tragions), as offsets from the anchor's centre in input pixels. The frame is padded to a
square before the downscale, so faces keep their aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .models import FULL_RANGE, SHORT_RANGE, TfliteModel

MIN_SCORE = 0.5
OVERLAP = 0.3  # boxes overlapping more than this (IoU) are one face
_SCORE_CLIP = 100.0  # the raw scores are clipped before the sigmoid, as the models were trained


@dataclass(frozen=True)
class FaceBox:
    """A face found in a frame, in that frame's pixels. ``keypoints`` (6, 2): right eye, left eye (the
    subject's), nose tip, mouth centre, right ear, left ear."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2


def ssd_anchors(input_size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    """Anchor centres (A, 2) in [0, 1], grid by grid in the model's output order; ``per_cell`` anchors share
    each cell's centre (the BlazeFace models use fixed-size anchors, so only centres matter)."""
    centres = []
    for stride, count in zip(strides, per_cell, strict=True):
        cells = int(np.ceil(input_size / stride))
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, count, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class _Model:
    file: str
    strides: tuple[int, ...]
    per_cell: tuple[int, ...]


# Short range: 16×16 cells with 2 anchors, then 8×8 with 6 (three 16-px layers merged): 896 anchors.
_SHORT = _Model(SHORT_RANGE, (8, 16), (2, 6))
# Full range: one 48×48 grid, one anchor a cell: 2304 anchors.
_FULL = _Model(FULL_RANGE, (4,), (1,))


class BlazeFaceDetector:
    """Faces in an RGB frame with one BlazeFace model."""

    def __init__(self, model: _Model, num_threads: int = 1, min_score: float = MIN_SCORE) -> None:
        self._model = TfliteModel(model.file, num_threads)
        self.size = self._model.input_size[0]
        self._anchors = ssd_anchors(self.size, model.strides, model.per_cell)
        self.min_score = min_score

    def detect(self, rgb: np.ndarray) -> list[FaceBox]:
        height, width = rgb.shape[:2]
        side = max(height, width)
        scale = self.size / side
        resized = cv2.resize(
            np.ascontiguousarray(rgb),
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        square = np.zeros((self.size, self.size, 3), np.float32)  # pad right and bottom: no stretching
        square[: resized.shape[0], : resized.shape[1]] = resized
        outputs = self._model.run(square / 127.5 - 1.0)
        regressors = next(o for o in outputs if o.shape[-1] == 16)
        logits = np.clip(next(o for o in outputs if o.shape[-1] == 1)[:, 0], -_SCORE_CLIP, _SCORE_CLIP)
        keep = np.flatnonzero(logits >= np.log(self.min_score / (1.0 - self.min_score)))
        if keep.size == 0:
            return []
        scores = np.zeros_like(logits)
        scores[keep] = 1.0 / (1.0 + np.exp(-logits[keep]))
        # Offsets are in input pixels from the anchor centre; one input pixel is side/size frame pixels.
        raw = regressors[keep].reshape(-1, 8, 2) / self.size
        centres = self._anchors[keep][:, None, :]
        points = np.concatenate([raw[:, :1] + centres, raw[:, 1:2], raw[:, 2:] + centres], axis=1) * side
        boxes = np.concatenate([points[:, 0] - points[:, 1] / 2, points[:, 0] + points[:, 1] / 2], axis=1)
        return _merge(boxes, scores[keep], points[:, 2:])


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-6)


def _merge(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray) -> list[FaceBox]:
    """Overlapping candidates averaged by score (steadier than keeping only the best one), best face first."""
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.ones(len(scores), bool)
    faces = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        group = remaining & (_iou(boxes[i], boxes) > OVERLAP)
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        points = (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum()
        faces.append(FaceBox(*(float(v) for v in box), score=float(scores[i]), keypoints=points.astype(np.float32)))
        remaining &= ~group
    return faces


class FaceDetector:
    """The short-range model first; the full-range one when it finds nothing or when small faces matter too
    (``include_small``: counting every face in view, about 2× the cost)."""

    def __init__(self, num_threads: int = 1) -> None:
        self._short = BlazeFaceDetector(_SHORT, num_threads)
        self._full: BlazeFaceDetector | None = None
        self._num_threads = num_threads

    def detect(self, rgb: np.ndarray, include_small: bool = False) -> list[FaceBox]:
        faces = [] if include_small else self._short.detect(rgb)
        if faces:
            return faces
        if self._full is None:
            self._full = BlazeFaceDetector(_FULL, self._num_threads)
        return self._full.detect(rgb)
