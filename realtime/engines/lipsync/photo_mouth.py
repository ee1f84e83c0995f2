"""The engine for avatars built from one portrait: the real lips moved to the audio, and an inner mouth drawn.

A photo has one mouth, so there are no other mouths to choose from. Per frame:

1. audio → target opening from loudness and vowel (visemes.py), as a share of the widest opening (at least
   OPEN_BEYOND past the portrait's own gap, so an open smile still opens visibly); silence, pauses and the
   closure of m, b, p give zero — the lips meet, also when the portrait's rest pose is an open smile;
2. a displacement field moves everything below the upper lip's inner edge (the lower lip, the jaw, the chin,
   settling back below it) by what each column needs for the gap between the lips to become the target, and
   nothing above that edge: the upper lip and the corners stay where the portrait has them;
3. the gap between the upper lip and the moved lower lip is painted: a dark cavity shaded from the person's
   own lip colour, a band of upper teeth under the upper lip, and the tongue low in a wide-open mouth, each with
   soft edges.

The field is smooth and zero at the edge of the region it touches, so there is no seam.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from realtime.avatar.reader import AvatarBundle
from realtime.face import topology

from .base import LipSyncEngine, LipSyncRequest
from .easing import smoothstep
from .visemes import mouth_shapes

OPEN_MAX = 0.1  # face heights between the lips on the loudest open vowel, from a closed rest pose
OPEN_BEYOND = 0.06  # … and at least this much more than the portrait's own gap (an open smile opens further)
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

    @property
    def widest(self) -> float:
        """Face heights between the lips on the loudest open vowel: OPEN_MAX, or the portrait's own gap and
        OPEN_BEYOND more (a portrait smiling with its teeth showing must open well past its rest to read as
        speech)."""
        own = float((self.lower - self.upper).max()) / max(self.face_height, 1e-6)
        return max(OPEN_MAX, own + OPEN_BEYOND)


def lip_colour(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean RGB of the lips: between the outer and inner contours (rasterised in the lips' own box, not the frame)."""
    outer = np.round(points[list(topology.OUTER_LIPS)]).astype(np.int32)
    inner = np.round(points[list(topology.INNER_LIPS)]).astype(np.int32)
    height, width = frame.shape[:2]
    x0, y0 = np.clip(outer.min(axis=0), 0, [width, height])
    x1, y1 = np.clip(outer.max(axis=0) + 1, 0, [width, height])
    mask = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.uint8)
    origin = np.array([x0, y0], np.int32)
    cv2.fillPoly(mask, [outer - origin], 1)
    cv2.fillPoly(mask, [inner - origin], 0)
    if not mask.any():
        return np.array([150, 70, 70], np.float32)
    return np.array(cv2.mean(np.ascontiguousarray(frame[y0:y1, x0:x1]), mask)[:3], np.float32)


def opening_fractions(shapes: np.ndarray) -> np.ndarray:
    """(B,) how far the lips part, 0 (together) to 1 (the frame's ``MouthGeometry.widest``), from (B, 3)
    openness, jaw, stretch: loudness sets it, the vowel shades it."""
    openness, jaw = shapes[:, 0], shapes[:, 1]
    vowel = np.divide(jaw, openness, out=np.zeros_like(jaw), where=openness > 0)
    return np.clip(openness * (0.7 + 0.3 * vowel), 0, 1)


@dataclass(frozen=True)
class _Reach:
    """Where one frame's warp reaches (frame pixels, ``[y0, y1) × [x0, x1)``) and what each column across the
    mouth does: the new gap between the lips and how far the lower lip moves."""

    x0: int
    y0: int
    x1: int
    y1: int
    gap: np.ndarray
    shift: np.ndarray
    relax: float

    @classmethod
    def of(cls, frame_shape: tuple[int, ...], g: MouthGeometry, opening: float) -> _Reach:
        height, width = frame_shape[:2]
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
        return cls(
            x0=max(int(g.columns[0] - 0.5 * mouth_width), 0),
            y0=max(int(g.upper.min() - 0.1 * g.face_height), 0),
            x1=min(int(g.columns[-1] + 0.5 * mouth_width) + 1, width),
            y1=min(int(g.chin + relax + travel) + 2, height),
            gap=gap,
            shift=shift,
            relax=relax,
        )

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def render_mouth(frame: np.ndarray, geometry: MouthGeometry, opening: float) -> np.ndarray:
    """A copy of ``frame`` with the gap between the lips made ``opening`` face heights (0: lips together)."""
    return render_mouths([frame], [geometry], [opening])[0]


def render_mouths(
    frames: Sequence[np.ndarray], geometries: Sequence[MouthGeometry], openings: Sequence[float]
) -> list[np.ndarray]:
    """``render_mouth`` for many frames in one vectorised pass: each frame's region is laid on a window as large
    as the largest, anchored at its own corner. The field is exactly zero outside a frame's own region, so the
    extra rows and columns are plain copies and every frame comes out as it would alone."""
    outs = [np.array(frame) for frame in frames]
    reaches = [_Reach.of(f.shape, g, float(o)) for f, g, o in zip(frames, geometries, openings, strict=True)]
    live = [k for k, reach in enumerate(reaches) if not reach.empty]
    if not live:
        return outs
    frames = [frames[k] for k in live]
    geometries = [geometries[k] for k in live]
    reaches = [reaches[k] for k in live]
    height = max(r.y1 - r.y0 for r in reaches)
    width = max(r.x1 - r.x0 for r in reaches)
    xs = np.stack([r.x0 + np.arange(width, dtype=np.float32) for r in reaches])  # (B, W)
    ys = np.stack([r.y0 + np.arange(height, dtype=np.float32) for r in reaches])[:, :, None]  # (B, H, 1)
    column_shift, line, old_gap, new_gap = (
        np.stack(rows).astype(np.float32) for rows in zip(*map(_columns, xs, geometries, reaches), strict=True)
    )  # each (B, W); float32 from here on: half the memory traffic of float64, and sub-pixel precision to spare
    # Rows down to the smaller of the two gaps keep their own pixels (the upper teeth stay as the photo has them);
    # below, the lower lip slides up over the inside (closing) or down (opening), taking the jaw half as far and
    # settling back below the chin. (The mesh puts the inner edge a pixel into the teeth.)
    seam = (line + np.minimum(old_gap, new_gap) - 1.0)[:, None, :]
    below = smoothstep((ys - seam + 0.5) / 1.5)
    chin = np.array([g.chin for g in geometries], np.float32)[:, None, None]
    lower_edge = np.array([g.lower.max() for g in geometries], np.float32)[:, None, None]
    relax = np.array([r.relax for r in reaches], np.float32)[:, None, None]
    jaw = np.where(
        ys < chin,
        1 - 0.5 * smoothstep((ys - lower_edge) / np.maximum(chin - lower_edge, 1.0)),
        0.5 * (1 - smoothstep((ys - chin) / relax)),
    )
    map_y = (ys - column_shift[:, None, :] * below * jaw).astype(np.float32)
    map_x = np.broadcast_to(xs[:, None, :], map_y.shape)
    pixels = np.stack(
        [
            cv2.remap(frame, np.ascontiguousarray(mx), my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for frame, mx, my in zip(frames, map_x, map_y, strict=True)
        ]
    ).astype(np.float32)
    wider, was = new_gap.max(axis=1), old_gap.max(axis=1)
    painted = np.flatnonzero((wider > was + 0.5) | ((wider >= 0.5) & (was < 0.5)))
    if len(painted):
        # Paint changes only rows between the upper lip's edge and the bottom of the new gap: a band of each window.
        top = np.floor(line[painted].min(axis=1)) - ys[painted, 0, 0]
        bottom = np.ceil((line + new_gap)[painted].max(axis=1)) - ys[painted, 0, 0] + 1
        band = int(min(max(bottom - top), height))
        rows = np.clip(top, 0, height - band).astype(np.intp)[:, None] + np.arange(band)  # (P, band)
        chosen = painted[:, None]
        pixels[chosen, rows] = _paint_inner_mouths(
            pixels[chosen, rows],
            ys[chosen, rows] - line[painted, None, :],
            new_gap[painted, None, :],
            old_gap[painted, None, :],
            xs[painted],
            [geometries[k] for k in painted],
        )
    pixels = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    for k, reach, region in zip(live, reaches, pixels, strict=True):
        outs[k][reach.y0 : reach.y1, reach.x0 : reach.x1] = region[: reach.y1 - reach.y0, : reach.x1 - reach.x0]
    return outs


def _columns(xs: np.ndarray, g: MouthGeometry, reach: _Reach) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per column ``xs`` of one frame: the lower lip's shift (fading to nothing over half a mouth width beyond the
    corners), the upper lip's inner edge, and the gap between the lips before and after."""
    mouth_width = float(g.columns[-1] - g.columns[0])
    outside = np.clip(np.maximum(g.columns[0] - xs, xs - g.columns[-1]) / (0.45 * mouth_width), 0, 1)
    return (
        np.interp(xs, g.columns, reach.shift) * (1 - smoothstep(outside)),
        np.interp(xs, g.columns, g.upper),
        np.interp(xs, g.columns, g.lower - g.upper, left=0, right=0),
        np.interp(xs, g.columns, reach.gap, left=0, right=0),
    )


def _paint_inner_mouths(
    region: np.ndarray,
    depth: np.ndarray,
    gap: np.ndarray,
    own: np.ndarray,
    xs: np.ndarray,
    geometries: Sequence[MouthGeometry],
) -> np.ndarray:
    """Cavity, teeth and tongue in the gap of (B, H, W, 3) ``region``: ``depth`` (B, H, W) rows below the upper
    lip's inner edge, ``gap`` (B, 1, W) per column; the top ``own`` (B, 1, W) rows of each column are the photo's
    own inside and stay. ``xs`` (B, W) are the columns' frame positions."""
    centre = np.array([g.columns.mean() for g in geometries], np.float32)[:, None]
    mouth_width = np.array([g.columns[-1] - g.columns[0] for g in geometries], np.float32)[:, None]
    face_height = np.array([g.face_height for g in geometries], np.float32)[:, None, None]
    lip_rgb = np.stack([g.lip_rgb for g in geometries])[:, None, None, :]
    inside = smoothstep(depth / 1.2) * smoothstep((gap - depth) / 1.5) * smoothstep((depth - own + 1.5) / 2.0)
    across = ((xs - centre) / np.maximum(mouth_width / 2, 1.0))[:, None, :]
    rows = np.clip(depth / np.maximum(gap, 1.0), 0, 1)
    shade = 1 - 0.3 * np.exp(-((rows - 0.55) ** 2) / 0.08) * np.exp(-(across**2) / 0.5)
    colour = (lip_rgb * CAVITY) * shade[..., None]
    # Upper teeth: a band under the lip, lit like the face, darker towards the corners, with faint gaps.
    skin_light = np.clip(lip_rgb.mean(axis=3, keepdims=True) / 150, 0.6, 1.1)
    teeth_height = np.minimum(0.55 * gap, TEETH_MAX * face_height)
    teeth = smoothstep((teeth_height - depth) / 1.2) * (1 - smoothstep((np.abs(across) - 0.55) / 0.35))
    tooth_width = np.maximum(0.09 * mouth_width, 2.0)
    gaps = 1 - 0.07 * np.cos(2 * np.pi * (xs - centre) / tooth_width + np.pi)[:, None, :] ** 8
    teeth_colour = TEETH_RGB * skin_light * (0.8 + 0.2 * (1 - np.abs(across)))[..., None] * gaps[..., None]
    colour = colour + teeth[..., None] * (teeth_colour - colour)
    # Tongue: low in a wide-open mouth.
    open_enough = smoothstep((gap / face_height - 0.03) / 0.03)
    tongue = open_enough * smoothstep((rows - 0.6) / 0.2) * (1 - smoothstep((np.abs(across) - 0.45) / 0.3))
    colour = colour + (0.85 * tongue)[..., None] * (lip_rgb * TONGUE - colour)
    return region + inside[..., None] * (colour - region)


class PhotoMouthLipSync(LipSyncEngine):
    """The engine for photo avatars: no weights, no atlas; the portrait's own lips, moved, with a drawn inside.
    A batch is rendered in one vectorised pass per avatar (``render_mouths``)."""

    name = "photo"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self.geometries = AvatarGeometries()

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        fractions = opening_fractions(mouth_shapes([r.audio for r in requests], np.stack([r.mel for r in requests])))
        out: list[np.ndarray | None] = [None] * len(requests)
        by_avatar: dict[int, list[int]] = {}
        for position, request in enumerate(requests):
            by_avatar.setdefault(id(request.avatar), []).append(position)
        for positions in by_avatar.values():  # one window per avatar: frames of one size share it
            avatar = requests[positions[0]].avatar
            indices = [requests[p].frame_index for p in positions]
            frames = [avatar.frames[i] for i in indices]
            geometries = [self.geometries.of(avatar, i, frame) for i, frame in zip(indices, frames, strict=True)]
            openings = [f * g.widest for f, g in zip(fractions[positions], geometries, strict=True)]
            for position, frame in zip(positions, render_mouths(frames, geometries, openings), strict=True):
                out[position] = frame
        return out  # type: ignore[return-value]


class AvatarGeometries:
    """Each avatar frame's MouthGeometry, measured once and kept as long as the avatar is (a photo's idle loop is
    shared by every session of it, so its frames come back again and again)."""

    def __init__(self) -> None:
        self._by_avatar: dict[int, dict[int, MouthGeometry]] = {}

    def of(self, avatar: AvatarBundle, index: int, frame: np.ndarray) -> MouthGeometry:
        """Frame ``index`` of ``avatar`` (``frame``, its pixels)."""
        key = id(avatar)
        known = self._by_avatar.get(key)
        if known is None:
            known = self._by_avatar[key] = {}
            weakref.finalize(avatar, self._by_avatar.pop, key, None)  # the entry goes with the avatar
        geometry = known.get(index)
        if geometry is None:
            geometry = known[index] = MouthGeometry.of(frame, avatar.landmarks[index])
        return geometry

    def __len__(self) -> int:
        """Avatars with measured frames."""
        return len(self._by_avatar)
