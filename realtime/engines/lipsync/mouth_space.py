"""A face-aligned frame for the mouth: where mouths from different frames (and a rendered one) line up.

Each frame's face is mapped by a similarity transform (rotation, uniform scale,
shift) fitted on points that do not move when speaking (eye corners, the
bridge and base of the nose) onto one template, so the mouth region of any
frame can be cut out, compared, blended, and put back on any other frame of
the same person. In that frame the subnasale (the base of the nose, point 2)
sits at ``(width / 2, TOP)`` and one face height is ``scale`` pixels.

Mouth shapes are measured in face heights so they compare across frame sizes:
opening (inner lips at the centre), width (corner to corner) and rounding
(outer lip height over width: "o" and "u" push the lips forward and together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.face import topology

# Eye corners, nose bridge, nose ridge and base: the face's rigid frame.
RIGID_POINTS = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 2)
SUBNASALE = 2
OUTER_UPPER_MID, OUTER_LOWER_MID = 0, 17
TOP = 0.06  # face heights of canvas above the subnasale
SIDE = 0.45  # face heights of canvas either side of it
FEATURES = ("opening", "width", "rounding")


def shape_features(points: np.ndarray) -> np.ndarray:
    """(..., 3) float32 opening, width and rounding in face heights, from (..., 468, 2+) landmarks."""
    pts = np.asarray(points, dtype=np.float32)[..., :2]
    height = np.maximum(topology.face_height(pts), 1e-6)
    width = np.linalg.norm(pts[..., topology.MOUTH_LEFT, :] - pts[..., topology.MOUTH_RIGHT, :], axis=-1)
    outer = np.linalg.norm(pts[..., OUTER_UPPER_MID, :] - pts[..., OUTER_LOWER_MID, :], axis=-1)
    opening = np.linalg.norm(pts[..., topology.UPPER_LIP_MID, :] - pts[..., topology.LOWER_LIP_MID, :], axis=-1)
    return np.stack([opening / height, width / height, outer / np.maximum(width, 1e-6)], axis=-1).astype(np.float32)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, 2, 3) least-squares similarity transforms taking each of ``source`` (N, k, 2) onto ``target`` (k, 2)
    (Umeyama's closed form, reflection excluded), all frames at once."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=1, keepdims=True), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = np.einsum("kd,nke->nde", dst_c, src_c) / src.shape[1]
    u, sigma, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    sigma[:, 1] *= d
    u[:, :, 1] *= d[:, None]
    rotation = u @ vt
    variance = (src_c**2).sum(axis=(1, 2)) / src.shape[1]
    scale = sigma.sum(axis=1) / np.maximum(variance, 1e-12)
    linear = rotation * scale[:, None, None]
    shift = dst_mean - np.einsum("nij,nj->ni", linear, src_mean[:, 0])
    return np.concatenate([linear, shift[:, :, None]], axis=2).astype(np.float32)


def invert_similarity(transforms: np.ndarray) -> np.ndarray:
    """(N, 2, 3) inverses of (N, 2, 3) affine transforms."""
    linear = np.linalg.inv(transforms[:, :, :2].astype(np.float64))
    shift = -np.einsum("nij,nj->ni", linear, transforms[:, :, 2])
    return np.concatenate([linear, shift[:, :, None]], axis=2).astype(np.float32)


def apply(transforms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, k, 2) mapped by their frame's (N, 2, 3) transform."""
    return np.einsum("nij,nkj->nki", transforms[:, :, :2], points[..., :2]) + transforms[:, None, :, 2]


def _spread(points: np.ndarray) -> np.ndarray:
    """Mean distance of (..., k, 2) points from their centroid."""
    return np.linalg.norm(points - points.mean(axis=-2, keepdims=True), axis=-1).mean(axis=-1)


@dataclass(frozen=True)
class MouthSpace:
    """The canvas mouths are compared on: the template for the rigid points and the canvas size."""

    template: np.ndarray  # (len(RIGID_POINTS), 2) canvas pixels
    scale: float  # canvas pixels per face height
    width: int
    height: int

    @classmethod
    def fit(cls, landmarks: np.ndarray, scale: float, depth: float) -> MouthSpace:
        """A canvas for a person: ``landmarks`` (N, 468, 2) of their frames, ``scale`` pixels per face height,
        ``depth`` face heights of canvas below the subnasale (enough to hold the lowest chin)."""
        points = np.asarray(landmarks, np.float32)
        rigid = points[:, RIGID_POINTS, :2]
        # Normalise every frame's rigid points onto the first, then take the median shape: a template no single
        # blink or landmark jitter decides.
        aligned = apply(fit_similarity(rigid, rigid[0]), rigid)
        shape = np.median(aligned, axis=0)
        # The rigid points' spread in face heights (chin to forehead), a median over frames: the jaw moves the chin.
        spread = _spread(rigid) / np.maximum(topology.face_height(points), 1e-6)
        in_face_heights = (shape - shape[RIGID_POINTS.index(SUBNASALE)]) / _spread(shape) * float(np.median(spread))
        width, height = round(2 * SIDE * scale), round((TOP + depth) * scale)
        template = in_face_heights * scale + np.array([width / 2, TOP * scale], np.float32)
        return cls(template.astype(np.float32), float(scale), int(width), int(height))

    def to_canvas(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, 2, 3) transforms from each frame's pixels to the canvas."""
        return fit_similarity(np.asarray(landmarks, np.float32)[:, RIGID_POINTS, :2], self.template)

    def poses(self, landmarks: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """(N, 2k) what the similarity cannot remove (a turned or nodding head), in face heights: the rigid points'
        offsets from the template once aligned. Mouths cut from frames with close poses fit each other best."""
        rigid = apply(transforms, np.asarray(landmarks, np.float32)[:, RIGID_POINTS, :2])
        return ((rigid - self.template) / self.scale).reshape(len(rigid), -1).astype(np.float32)
