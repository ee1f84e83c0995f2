"""The engine for avatars built from one portrait: the real lips moved to the audio, and an inner mouth drawn.

A photo has one mouth, so there are no other mouths to choose from. Per frame:

1. audio → target opening (face heights) from loudness and vowel (visemes.py); silence, pauses and the closure
   of m, b, p give zero — the lips meet, also when the portrait's rest pose is an open smile;
2. a displacement field moves everything below the upper lip's inner edge (the lower lip, the jaw, the chin,
   settling back below it) by what each column needs for the gap between the lips to become the target, and
   nothing above that edge: the upper lip and the corners stay where the portrait has them;
3. the gap between the upper lip and the moved lower lip is painted: a dark cavity shaded from the person's
   own lip colour, a band of upper teeth under the upper lip, and the tongue low in a wide-open mouth, each with
   soft edges.

The field is smooth and zero at the edge of the region it touches, so there is no seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.face import topology

from .base import LipSyncEngine, LipSyncRequest
from .easing import smoothstep
from .visemes import mouth_shapes

OPEN_MAX = 0.1  # face heights between the lips on the loudest open vowel
TEETH_RGB = np.array([236, 230, 216], np.float32)
TEETH_MAX = 0.03  # face heights of upper teeth shown
CAVITY = np.array([0.42, 0.2, 0.22], np.float32)  # the cavity's colour as a fraction of the lip colour
TONGUE = np.array([0.95, 0.55, 0.58], np.float32)


@dataclass(frozen=True)
class MouthGeometry:
    """One frame's mouth, from its landmarks: the columns across it and, per column, the upper lip's inner edge
    and the lower lip's inner edge (rows, frame pixels), with the face height and chin row."""

    columns: np.ndarray
    upper: np.ndarray
    lower: np.ndarray
    face_height: float
    chin: float
    lip_rgb: np.ndarray

    @classmethod
    def of(cls, frame: np.ndarray, points: np.ndarray) -> MouthGeometry:
        pts = np.asarray(points, np.float32)[:, :2]
        upper, lower = pts[list(topology.INNER_LIPS_UPPER)], pts[list(topology.INNER_LIPS_LOWER)]
        left, right = pts[topology.MOUTH_LEFT, 0], pts[topology.MOUTH_RIGHT, 0]
        columns = np.linspace(min(left, right), max(left, right), 48, dtype=np.float32)
        upper_rows = np.interp(columns, *upper[np.argsort(upper[:, 0])].T)
        lower_rows = np.interp(columns, *lower[np.argsort(lower[:, 0])].T)
        return cls(
            columns=columns,
            upper=np.minimum(upper_rows, lower_rows).astype(np.float32),
            lower=np.maximum(upper_rows, lower_rows).astype(np.float32),
            face_height=float(topology.face_height(pts)),
            chin=float(pts[topology.CHIN, 1]),
            lip_rgb=lip_colour(frame, pts),
        )


def lip_colour(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB of the lips: between the outer and inner contours."""
    outer = np.round(points[list(topology.OUTER_LIPS)]).astype(np.int32)
    inner = np.round(points[list(topology.INNER_LIPS)]).astype(np.int32)
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [outer], 1)
    cv2.fillPoly(mask, [inner], 0)
    if not mask.any():
        return np.array([150, 70, 70], np.float32)
    return frame[mask.astype(bool)].reshape(-1, 3).mean(axis=0).astype(np.float32)


def target_openings(shapes: np.ndarray) -> np.ndarray:
    """(B,) face heights between the lips from (B, 3) openness, jaw, stretch: loudness sets it, the vowel shades it."""
    openness, jaw = shapes[:, 0], shapes[:, 1]
    vowel = np.divide(jaw, openness, out=np.zeros_like(jaw), where=openness > 0)
    return np.clip(openness * (0.7 + 0.3 * vowel), 0, 1) * OPEN_MAX


def render_mouth(frame: np.ndarray, geometry: MouthGeometry, opening: float) -> np.ndarray:
    """A copy of ``frame`` with the gap between the lips made ``opening`` face heights (0: lips together)."""
    out = np.array(frame)
    g = geometry
    height, width = frame.shape[:2]
    mouth_width = float(g.columns[-1] - g.columns[0])
    own = g.lower - g.upper
    if own.max() > 0.015 * g.face_height:  # an open portrait: the mouth keeps its own outline as it opens
        profile = own / own.max()
    else:  # a closed one: a lens from corner to corner
        profile = np.sqrt(np.clip(1 - ((g.columns - g.columns.mean()) / (mouth_width / 2)) ** 2, 0, 1))
    gap = opening * g.face_height * profile
    shift = g.upper + gap - g.lower  # per column: how far the lower lip moves (negative closes)
    travel = float(np.abs(shift).max())
    relax = 0.1 * g.face_height + 1.5 * travel
    x0 = max(int(g.columns[0] - 0.5 * mouth_width), 0)
    x1 = min(int(g.columns[-1] + 0.5 * mouth_width) + 1, width)
    y0 = max(int(g.upper.min() - 0.1 * g.face_height), 0)
    y1 = min(int(g.chin + relax + travel) + 2, height)
    if x1 <= x0 or y1 <= y0:
        return out
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    # Beyond the corners the shift fades to nothing over half a mouth width.
    outside = np.clip(np.maximum(g.columns[0] - xs, xs - g.columns[-1]) / (0.45 * mouth_width), 0, 1)
    column_shift = (np.interp(xs, g.columns, shift) * (1 - smoothstep(outside)))[None, :]
    line = np.interp(xs, g.columns, g.upper)[None, :]
    old_gap = np.interp(xs, g.columns, g.lower - g.upper, left=0, right=0)[None, :]
    new_gap = np.interp(xs, g.columns, gap, left=0, right=0)[None, :]
    # Rows down to the smaller of the two gaps keep their own pixels (the upper teeth stay as the photo has them);
    # below, the lower lip slides up over the inside (closing) or down (opening), taking the jaw half as far and
    # settling back below the chin.
    seam = line + np.minimum(old_gap, new_gap) - 1.0  # the mesh puts the inner edge a pixel into the teeth
    below = smoothstep((ys - seam + 0.5) / 1.5)
    lower_edge = float(g.lower.max())
    jaw = np.where(
        ys < g.chin,
        1 - 0.5 * smoothstep((ys - lower_edge) / max(g.chin - lower_edge, 1.0)),
        0.5 * (1 - smoothstep((ys - g.chin) / relax)),
    )
    field = column_shift * below * jaw
    map_x = np.broadcast_to(xs[None, :], field.shape).astype(np.float32)
    region = cv2.remap(frame, map_x, (ys - field).astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    region = region.astype(np.float32)
    if new_gap.max() > old_gap.max() + 0.5 or new_gap.max() >= 0.5 > old_gap.max():
        region = _paint_inner_mouth(region, ys - line, new_gap, old_gap, xs, g)
    out[y0:y1, x0:x1] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    return out


def _paint_inner_mouth(
    region: np.ndarray, depth: np.ndarray, gap: np.ndarray, own: np.ndarray, xs: np.ndarray, g: MouthGeometry
) -> np.ndarray:
    """Cavity, teeth and tongue in the gap: ``depth`` rows below the upper lip's inner edge, ``gap`` per column;
    the top ``own`` rows of each column are the photo's own inside and stay."""
    inside = smoothstep(depth / 1.2) * smoothstep((gap - depth) / 1.5) * smoothstep((depth - own + 1.5) / 2.0)
    across = (xs - g.columns.mean()) / max((g.columns[-1] - g.columns[0]) / 2, 1.0)
    rows = np.clip(depth / np.maximum(gap, 1.0), 0, 1)
    shade = 1 - 0.3 * np.exp(-((rows - 0.55) ** 2) / 0.08) * np.exp(-(across[None, :] ** 2) / 0.5)
    colour = (g.lip_rgb * CAVITY)[None, None, :] * shade[..., None]
    # Upper teeth: a band under the lip, lit like the face, darker towards the corners, with faint gaps.
    skin_light = float(np.clip(g.lip_rgb.mean() / 150, 0.6, 1.1))
    teeth_height = np.minimum(0.55 * gap, TEETH_MAX * g.face_height)
    teeth = smoothstep((teeth_height - depth) / 1.2) * (1 - smoothstep((np.abs(across)[None, :] - 0.55) / 0.35))
    tooth_width = 0.09 * (g.columns[-1] - g.columns[0])
    gaps = 1 - 0.07 * np.cos(2 * np.pi * (xs - g.columns.mean()) / max(tooth_width, 2.0) + np.pi)[None, :] ** 8
    teeth_colour = TEETH_RGB * skin_light * (0.8 + 0.2 * (1 - np.abs(across)))[None, :, None] * gaps[..., None]
    colour = colour + teeth[..., None] * (teeth_colour - colour)
    # Tongue: low in a wide-open mouth.
    open_enough = smoothstep((gap / g.face_height - 0.03) / 0.03)
    tongue = open_enough * smoothstep((rows - 0.6) / 0.2) * (1 - smoothstep((np.abs(across)[None, :] - 0.45) / 0.3))
    colour = colour + (0.85 * tongue)[..., None] * (g.lip_rgb * TONGUE - colour)
    return region + inside[..., None] * (colour - region)


class PhotoMouthLipSync(LipSyncEngine):
    """The engine for photo avatars: no weights, no atlas; the portrait's own lips, moved, with a drawn inside."""

    name = "photo"

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        openings = target_openings(mouth_shapes([r.audio for r in requests], np.stack([r.mel for r in requests])))
        frames = []
        for request, opening in zip(requests, openings, strict=True):
            frame = request.avatar.frames[request.frame_index]
            geometry = MouthGeometry.of(frame, request.avatar.landmarks[request.frame_index])
            frames.append(render_mouth(frame, geometry, float(opening)))
        return frames
