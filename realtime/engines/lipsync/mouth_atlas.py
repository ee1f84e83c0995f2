"""The mouth atlas: the person's own mouths, cut from their footage and indexed by shape (Video Rewrite style).

At build time every kept frame's lower face is cut onto the face-aligned canvas
(mouth_space.py), its mouth measured (opening, width, rounding), and the frames
binned on a grid of opening × width; each filled cell keeps its most typical
frame (nearest the cell's centre). The result is a few dozen small patches
instead of the whole clip, with each patch's shape, head pose, lip contours, chin
and the frame it came from: what the engine reads at run time (colour is matched
per rendered frame, so none is stored), plus how open each mouth is seen on the
avatar's own frames (measured by the build step, atlas_build.py). A coverage report says how
many distinct shapes were found and what range of opening, and asks for more
speech when the range is thin.

Files in the bundle's ``extras/mouth_atlas/`` folder: ``mouth_atlas.npz`` (arrays) and
``mouth_atlas.json`` (canvas geometry and the coverage report). Bundles built before may hold further
arrays (``ring_colour``, ``frame_ring``, ``mask``): loading ignores them; bundles built before the openings
were measured on the avatar's frames load with the entries' own openings in their place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.avatar.messages import Message, gettext_noop
from realtime.face import topology

from .easing import smoothstep
from .mouth_space import RIGID_POINTS, SUBNASALE, MouthSpace, apply, shape_features

ATLAS = "mouth_atlas"  # the bundle extra's name
ARRAYS_FILE = "mouth_atlas.npz"
INFO_FILE = "mouth_atlas.json"
OPENING_LEVELS = 10
WIDTH_LEVELS = 5
CLOSED_POSES = 3  # the most closed mouth is kept for each of this many head poses
MIN_SCALE, MAX_SCALE = 64.0, 192.0  # canvas pixels per face height: the footage's own, within these bounds
THIN_RANGE = 0.04  # face heights: an opening range narrower than this asks for more speech
FEW_SHAPES = 8


class AtlasMissing(LookupError):
    """A bundle without a mouth atlas (built before atlases existed, or from a photo)."""


@dataclass(frozen=True)
class Coverage:
    """What the atlas covers, for the build's warnings and the admin preview."""

    frames: int  # frames measured
    shapes: int  # distinct shapes kept (filled grid cells)
    opening_min: float  # face heights
    opening_max: float
    width_min: float
    width_max: float

    @property
    def warnings(self) -> list[Message]:
        if self.opening_max - self.opening_min >= THIN_RANGE and self.shapes >= FEW_SHAPES:
            return []
        template = gettext_noop(
            "The footage shows few mouth shapes (%(shapes)d, opening %(low).3f–%(high).3f of the face height): "
            "the mouth will move less than in real speech. Record at least 20 seconds of the person speaking, "
            "with open vowels, for a livelier mouth."
        )
        return [Message(template, {"shapes": self.shapes, "low": self.opening_min, "high": self.opening_max})]


@dataclass(frozen=True)
class MouthAtlas:
    """Patches (K, H, W, 3) uint8 on the canvas, their shapes (K, 3), head poses (K, 24), lips (K, 40, 2) and chin
    heights (K,) in canvas pixels, source frame indices (K,) and grid cells (K, 2) = (opening level, width level);
    ``seen`` (K, M): the opening in face heights the face mesh reads of each entry composed on each of the M base
    frames ``seen_frames`` (M,) (atlas_build.py; before it measures, M = 1 and the entries' own openings)."""

    space: MouthSpace
    patches: np.ndarray
    features: np.ndarray
    poses: np.ndarray
    lips: np.ndarray
    chins: np.ndarray
    sources: np.ndarray
    cells: np.ndarray
    seen: np.ndarray
    seen_frames: np.ndarray
    coverage: Coverage

    @property
    def closed(self) -> int:
        """Index of the entry with the most closed mouth."""
        return int(np.argmin(self.features[:, 0]))

    def save(self, folder: Path) -> None:
        np.savez(
            folder / ARRAYS_FILE,
            template=self.space.template,
            patches=self.patches,
            features=self.features,
            poses=self.poses,
            lips=self.lips,
            chins=self.chins,
            sources=self.sources,
            cells=self.cells,
            seen=self.seen,
            seen_frames=self.seen_frames,
        )
        info = {"scale": self.space.scale, "width": self.space.width, "height": self.space.height}
        (folder / INFO_FILE).write_text(json.dumps({**info, "coverage": asdict(self.coverage)}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> MouthAtlas:
        try:
            info = json.loads((folder / INFO_FILE).read_text())
            arrays = np.load(folder / ARRAYS_FILE)
        except FileNotFoundError:
            raise AtlasMissing(f"Avatar bundle {folder} has no mouth atlas; rebuild the avatar") from None
        space = MouthSpace(arrays["template"], info["scale"], info["width"], info["height"])
        names = ("patches", "features", "poses", "lips", "chins", "sources", "cells")  # older extras are ignored
        loaded = {name: arrays[name] for name in names}
        if "seen" in arrays:
            loaded.update(seen=arrays["seen"], seen_frames=arrays["seen_frames"])
        else:  # built before the openings were measured on the avatar's frames
            loaded.update(unmeasured(loaded["features"]))
        return cls(space, **loaded, coverage=Coverage(**info["coverage"]))


def unmeasured(features: np.ndarray) -> dict[str, np.ndarray]:
    """``seen`` and ``seen_frames`` of an atlas not measured on its frames: each entry's own opening, everywhere."""
    return {"seen": features[:, :1].astype(np.float32), "seen_frames": np.zeros(1, np.int32)}


LIPS = topology.OUTER_LIPS + topology.INNER_LIPS


def _subnasale_y(space: MouthSpace) -> float:
    return float(space.template[RIGID_POINTS.index(SUBNASALE), 1])


def mouth_mask(space: MouthSpace, lips: np.ndarray) -> np.ndarray:
    """(H, W) float32 weights of the mouth region of ``lips`` (K, 40, 2) canvas contours: 1 over the lips and the
    gap between them, fading to 0 below the nose, towards the cheeks and above the chin. What atlas_grid shows
    of each patch (the engine draws its masks per frame, from both frames' landmarks)."""
    height, width = space.height, space.width
    scale = space.scale
    top = _subnasale_y(space) + 0.01 * scale
    corners = lips[:, [0, 10], 0]  # the outer contour starts and ends at the corners
    half_width = 0.5 * float(np.median(corners[:, 1] - corners[:, 0]))
    centre_x = float(np.median(lips[:, :, 0]))
    bottom = min(float(np.percentile(lips[:, :11, 1].max(axis=1), 95)) + 0.08 * scale, height - 1.0)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    from_top = smoothstep((ys - top) / (0.05 * scale))
    centre_y = (top + bottom) / 2
    radius = np.sqrt(
        ((xs - centre_x) / (1.15 * half_width + 0.03 * scale)) ** 2 + ((ys - centre_y) / ((bottom - top) / 2)) ** 2
    )
    return (from_top * (1 - smoothstep((radius - 0.7) / 0.3))).astype(np.float32)


def lower_face_mask(space: MouthSpace) -> np.ndarray:
    """(H, W) float32 weights of the whole region lip-sync may change (the mouth and the jaw that moves with it):
    what is pasted back into the frame. Outside what changed, the pasted pixels are the frame's own."""
    height, width = space.height, space.width
    scale = space.scale
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    rows = smoothstep((ys - _subnasale_y(space)) / (0.04 * scale)) * (
        1 - smoothstep((ys - height + 0.06 * scale) / (0.05 * scale))
    )
    cols = 1 - smoothstep((np.abs(xs - width / 2) - 0.34 * scale) / (0.08 * scale))
    return (rows * cols).astype(np.float32)


def build_mouth_atlas(frames: Sequence[np.ndarray], landmarks: np.ndarray) -> MouthAtlas:
    """The atlas of ``frames`` (N of (H, W, 3) uint8 RGB; only the kept entries' frames are read) with
    ``landmarks`` (N, 468, 2)."""
    points = np.asarray(landmarks, np.float32)[..., :2]
    features = shape_features(points)
    scale = float(np.clip(np.median(topology.face_height(points)), MIN_SCALE, MAX_SCALE))
    to_canvas_first = MouthSpace.fit(points, scale, depth=0.7)
    transforms = to_canvas_first.to_canvas(points)
    chins = apply(transforms, points[:, [topology.CHIN]])[:, 0, 1]
    # Room below the lowest chin for the skin under it to follow the jaw and settle back.
    height = round(float(chins.max()) + 0.3 * scale)
    space = MouthSpace(to_canvas_first.template, scale, to_canvas_first.width, height)
    lips = apply(transforms, points[:, LIPS]).astype(np.float32)

    all_poses = space.poses(points, transforms)
    chosen, cells = _pick_per_cell(features, _main_pose_axis(all_poses))
    size = (space.width, space.height)
    patches = np.stack(
        [
            cv2.warpAffine(
                np.ascontiguousarray(frames[i]),
                transforms[i],
                size,
                flags=cv2.INTER_AREA,
                borderMode=cv2.BORDER_REPLICATE,
            )
            for i in chosen
        ]
    )
    opening = features[:, 0]
    coverage = Coverage(
        frames=len(points),
        shapes=len(chosen),
        opening_min=float(np.percentile(opening, 2)),
        opening_max=float(np.percentile(opening, 98)),
        width_min=float(np.percentile(features[:, 1], 2)),
        width_max=float(np.percentile(features[:, 1], 98)),
    )
    return MouthAtlas(
        space=space,
        patches=patches,
        features=features[chosen],
        poses=all_poses[chosen],
        lips=lips[chosen],
        chins=chins[chosen].astype(np.float32),
        sources=np.asarray(chosen, np.int32),
        cells=cells,
        **unmeasured(features[chosen]),
        coverage=coverage,
    )


def _main_pose_axis(poses: np.ndarray) -> np.ndarray:
    """(N,) each frame's position along the direction its head pose (MouthSpace.poses) varies most in the clip."""
    centred = poses - poses.mean(axis=0)
    if len(poses) < 2 or not centred.any():
        return np.zeros(len(poses), np.float32)
    return (centred @ np.linalg.svd(centred, full_matrices=False)[2][0]).astype(np.float32)


def _pick_per_cell(features: np.ndarray, pose: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The frame nearest each filled cell's centre on an opening × width grid spanning the 2nd–98th percentiles,
    plus the most closed frame of each of CLOSED_POSES stretches of ``pose`` (N,) (every head pose the clip shows
    can shut the mouth: a closed mouth from another pose fits that head badly)."""
    low, high = np.percentile(features[:, :2], 2, axis=0), np.percentile(features[:, :2], 98, axis=0)
    span = np.maximum(high - low, 1e-4)
    levels = np.array([OPENING_LEVELS, WIDTH_LEVELS])
    position = np.clip((features[:, :2] - low) / span, 0, 1) * (levels - 1e-6)
    cell = position.astype(int)
    offset = np.linalg.norm(position - cell - 0.5, axis=1)
    best: dict[tuple[int, int], int] = {}
    for index in np.argsort(offset):
        best.setdefault((int(cell[index, 0]), int(cell[index, 1])), int(index))
    edges = np.percentile(pose, np.linspace(0, 100, CLOSED_POSES + 1)[1:-1])
    stretch = np.searchsorted(edges, pose)
    for level in np.unique(stretch):
        in_level = np.flatnonzero(stretch == level)
        closed = int(in_level[np.argmin(features[in_level, 0])])
        if closed not in best.values():
            best[(-1 - int(level), int(cell[closed, 1]))] = closed
    keys = sorted(best)
    return [best[k] for k in keys], np.array([(max(k[0], 0), k[1]) for k in keys], np.int16)


def atlas_grid(atlas: MouthAtlas, tile: int = 72) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the person's mouths on the opening × width grid the atlas indexes them by (closed at
    the top, widest on the right), each cut to the mouth region; empty cells are grey. For the admin preview."""
    support = np.argwhere(mouth_mask(atlas.space, atlas.lips) > 0.05)
    (y0, x0), (y1, x1) = support.min(axis=0), support.max(axis=0) + 1
    height = max(1, round(tile * (y1 - y0) / max(x1 - x0, 1)))
    gap = 2
    rows, cols = OPENING_LEVELS, WIDTH_LEVELS
    grid = np.full((rows * (height + gap) - gap, cols * (tile + gap) - gap, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            grid[r * (height + gap) : r * (height + gap) + height, c * (tile + gap) : c * (tile + gap) + tile] = 200
    # The most closed frame shares a cell with its grid neighbour: it is drawn last, so the cell shows it.
    for index in np.argsort(-atlas.features[:, 0]):
        r, c = (int(v) for v in atlas.cells[index])
        crop = cv2.resize(
            np.ascontiguousarray(atlas.patches[index, y0:y1, x0:x1]), (tile, height), interpolation=cv2.INTER_AREA
        )
        grid[r * (height + gap) : r * (height + gap) + height, c * (tile + gap) : c * (tile + gap) + tile] = crop
    return grid
