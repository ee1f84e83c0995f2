"""The default engine for video avatars: the person's own mouths from the atlas, chosen by the audio.

Per batch, vectorised across every request it holds:

1. audio → a target mouth shape per frame (opening, width, rounding in face heights), from the same loudness and
   vowel features as the weights-free warp (visemes.py), mapped onto this person's range of shapes: silence and
   quiet consonants give their most closed mouth, the loudest open vowels their widest;
2. each atlas entry costs its (range-normalised) distance to the target, its opening taken as the face mesh
   reads it on this base frame's head pose (measured at build time, atlas_build.py: the same mouth is seen
   more or less open on differently turned heads); along a run of consecutive frames of one
   avatar (one session's frames in one batch) a Viterbi pass adds a cost for every jump between consecutive
   entries, so the mouth does not flicker between far-apart shapes; the chosen entry is blended with the next
   best in proportion to how close their costs are;
3. the chosen patch is moved so its upper lip and corners land on the base frame's, the base frame's jaw is moved
   to the chosen mouth's chin, and the patch replaces the base frame over a mask drawn per frame from the
   landmarks (both mouths and both chins, with a margin and a feather: the base frame's own mouth never shows
   through, whatever either frame's head pose), colour-matched to the base frame in that mask's feather;
4. the canvas is warped back onto the base frame (the similarity that aligns its rigid points) through the
   feathered lower-face region.

Only the mask's bounding box is touched; everything else is the base frame's own pixels. What depends on the
base frame alone (the inside of its face outline, its face on the canvas, its paste-back weights) is made once
per avatar or kept per base frame (BaseParts), and a batch's frames of one avatar are composed in one pass
whichever sessions they come from.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime.avatar.reader import AvatarBundle
from realtime.face.topology import (
    CHIN,
    FACE_OVAL,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    OUTER_LIPS,
    OUTER_LIPS_LOWER,
    OUTER_LIPS_UPPER,
)

from .base import LipSyncEngine, LipSyncRequest
from .easing import bump, smoothstep
from .mouth_atlas import ATLAS, LIPS, MouthAtlas, lower_face_mask
from .mouth_space import MouthSpace, apply, invert_similarity
from .visemes import mouth_shapes

UPPER_LIP = (*OUTER_LIPS_UPPER, MOUTH_LEFT, MOUTH_RIGHT)  # what must stay where the base frame has it
UPPER_INDICES = [LIPS.index(i) for i in UPPER_LIP]
CHIN_NEIGHBOURS = (FACE_OVAL.index(148), FACE_OVAL.index(377))  # the outline's points either side of the chin
CHIN_ARC = [FACE_OVAL.index(i) for i in (378, 400, 377, 152, 148, 176, 149)]  # the outline around the chin
JUMP_COST = 0.05  # weight of a jump between consecutive entries against distance to the target
WEIGHTS = np.array([1.0, 0.5, 0.35], np.float32)  # opening matters most; width and rounding refine
SECOND_BEST = 0.0  # the most the runner-up entry is blended in (at equal cost)
GAIN_LIMITS = (0.75, 1.33)
ALIGN_REACH = 0.08  # face heights: how far around each upper-lip point the alignment warp reaches
MOUTH_MARGIN = 0.08  # face heights of full weight around both mouths and chins before the feather
MOUTH_FEATHER = 0.03  # face heights over which the mouth fades into the base frame
POSE_COST = 15.0  # per squared face height of rigid-point mismatch: a mouth from another head pose fits badly
BASE_PARTS_BYTES = 32 << 20  # per avatar: BaseParts of about 350 base frames at 720x528
_BYTE = np.float32(255)  # a uint8 mask's full weight


@dataclass
class FittedAvatar:
    """An avatar with its atlas and, per base frame, where the canvas lands and the colour around the mouth."""

    atlas: MouthAtlas
    to_frame: np.ndarray  # (N, 2, 3) canvas → frame
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2: the mask's support in the frame
    poses: np.ndarray  # (N, 24) base frames' head poses (MouthSpace.poses)
    upper_lips: np.ndarray  # (N, 13, 2) canvas: the base frames' upper lip contour and corners
    outer_lips: np.ndarray  # (N, 20, 2) canvas: the base frames' outer lip contours
    face_ovals: np.ndarray  # (N, 36, 2) canvas: the base frames' face outlines
    own_faces: np.ndarray  # (K, H, W) where each atlas entry's own frame has face (own_faces)
    inside_faces: np.ndarray  # (N, H, W) uint8, 255 well inside each base frame's face outline (inside_faces)
    lip_line: np.ndarray  # (N,) canvas rows of the base frames' mouth corners
    lower_lip: np.ndarray  # (N,) … of their lower lip's outer edge
    chin: np.ndarray  # (N,) … of their chin
    region: np.ndarray  # (H, W) what is pasted back (mouth_atlas.lower_face_mask)
    jaw_columns: np.ndarray  # (W,) how much each canvas column follows the jaw: 1 at the centre, 0 at the cheeks
    seen: np.ndarray  # (N, K) each entry's opening as seen on each base frame (its nearest measured pose)
    rest: np.ndarray  # (3,) the closed mouth's shape
    low: np.ndarray  # (3,) narrowest / least shapes (2nd percentile)
    high: np.ndarray  # (3,) widest / most


def fit_avatar(atlas: MouthAtlas, landmarks: np.ndarray, frame_size: tuple[int, int]) -> FittedAvatar:
    """Precompute what rendering needs per base frame (once per avatar per process); ``frame_size`` (H, W)."""
    space = atlas.space
    to_canvas = space.to_canvas(landmarks)
    to_frame = invert_similarity(to_canvas)
    region = lower_face_mask(space)
    support = np.argwhere(region > 0.002)
    (y0, x0), (y1, x1) = support.min(axis=0), support.max(axis=0) + 1
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float32)
    in_frame = np.einsum("nij,kj->nki", to_frame[:, :, :2], corners) + to_frame[:, None, :, 2]
    height, width = frame_size
    boxes = np.concatenate([np.floor(in_frame.min(axis=1)) - 1, np.ceil(in_frame.max(axis=1)) + 1], axis=1).astype(
        np.int32
    )
    boxes = np.clip(boxes, 0, [width, height, width, height])
    features = atlas.features
    closed = features[:, 0] <= features[atlas.closed, 0] + 0.005
    canvas_points = apply(to_canvas, np.asarray(landmarks, np.float32)[:, [MOUTH_LEFT, MOUTH_RIGHT, 17, CHIN], :2])
    columns = np.arange(space.width, dtype=np.float32)
    face_ovals = apply(to_canvas, np.asarray(landmarks, np.float32)[:, FACE_OVAL]).astype(np.float32)
    poses = space.poses(landmarks, to_canvas)
    measured = poses[atlas.seen_frames]
    nearest = np.argmin(((poses[:, None, :] - measured[None, :, :]) ** 2).sum(axis=2), axis=1)
    return FittedAvatar(
        atlas=atlas,
        to_frame=to_frame,
        boxes=boxes,
        poses=poses,
        upper_lips=apply(to_canvas, np.asarray(landmarks, np.float32)[:, UPPER_LIP]).astype(np.float32),
        outer_lips=apply(to_canvas, np.asarray(landmarks, np.float32)[:, OUTER_LIPS]).astype(np.float32),
        face_ovals=face_ovals,
        own_faces=own_faces(
            space, apply(to_canvas[atlas.sources], np.asarray(landmarks, np.float32)[atlas.sources][:, FACE_OVAL])
        ),
        inside_faces=inside_faces(space, face_ovals),
        lip_line=canvas_points[:, :2, 1].mean(axis=1),
        lower_lip=canvas_points[:, 2, 1],
        chin=canvas_points[:, 3, 1],
        region=region,
        jaw_columns=bump((columns - space.width / 2) / (0.22 * space.scale)).astype(np.float32),
        seen=np.ascontiguousarray(atlas.seen[:, nearest].T),
        rest=np.median(features[closed], axis=0),
        low=np.percentile(features, 2, axis=0),
        high=np.percentile(features, 98, axis=0),
    )


def target_shapes(fitted: FittedAvatar, openness_jaw_stretch: np.ndarray) -> np.ndarray:
    """(B, 3) target opening, width, rounding for this person from (B, 3) openness, jaw, stretch."""
    openness, jaw, stretch = openness_jaw_stretch.T
    rest, low, high = fitted.rest, fitted.low, fitted.high
    # Loudness sets how far the mouth opens; the vowel only shades it ("ee" opens less than "ah").
    vowel = np.divide(jaw, openness, out=np.zeros_like(jaw), where=openness > 0)
    opening = rest[0] + np.clip(openness * (0.7 + 0.3 * vowel), 0, 1) * max(high[0] - rest[0], 0.0)
    width = rest[1] + np.where(stretch > 0, stretch * (high[1] - rest[1]), stretch * (rest[1] - low[1]))
    rounding = rest[2] + np.clip(-stretch, 0, 1) * max(high[2] - rest[2], 0.0)
    return np.stack([opening, width, rounding], axis=1).astype(np.float32)


def choose_entries(
    fitted: FittedAvatar, targets: np.ndarray, indices: np.ndarray, runs: Sequence[slice] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For frames (targets (B, 3), base frame ``indices`` (B,)) in ``runs`` of consecutive frames (slices; default:
    all of them one run): (B, 2) entry indices (best path along each run, runner-up) and (B, 2) blend weights. The
    opening compared with the target is the one seen on each base frame, so the rendered mouth opens with the
    loudness whichever way the base frame's head is turned."""
    features = fitted.atlas.features
    span = np.maximum(fitted.high - fitted.low, 1e-3)
    shapes = np.repeat(features[None, :, :], len(targets), axis=0)
    shapes[:, :, 0] = fitted.seen[indices]
    distance = (((shapes - targets[:, None, :]) / span) ** 2 * WEIGHTS).sum(axis=2)  # (B, K)
    pose_gap = ((fitted.atlas.poses[None, :, :] - fitted.poses[indices][:, None, :]) ** 2).sum(axis=2)
    distance += POSE_COST * pose_gap
    jumps = JUMP_COST * (((features[:, None, :] - features[None, :, :]) / span) ** 2 * WEIGHTS).sum(axis=2)
    path = np.empty(len(targets), np.int32)
    for run in runs or [slice(0, len(targets))]:
        path[run] = _cheapest_path(distance[run], jumps)
    masked = distance.copy()
    masked[np.arange(len(path)), path] = np.inf
    runner_up = np.argmin(masked, axis=1)
    gap = masked[np.arange(len(path)), runner_up] - distance[np.arange(len(path)), path]
    second = SECOND_BEST * np.exp(-np.maximum(gap, 0) / 0.05)
    return np.stack([path, runner_up], axis=1), np.stack([1 - second, second], axis=1).astype(np.float32)


def _cheapest_path(distance: np.ndarray, jumps: np.ndarray) -> np.ndarray:
    """Viterbi: the entries (B,) along one run whose distances (B, K) plus the jump costs (K, K) between
    consecutive entries are least."""
    total = distance[0].copy()
    back = np.zeros(distance.shape, np.int32)
    for t in range(1, len(distance)):
        step = total[:, None] + jumps
        back[t] = np.argmin(step, axis=0)
        total = step[back[t], np.arange(distance.shape[1])] + distance[t]
    path = np.empty(len(distance), np.int32)
    path[-1] = int(np.argmin(total))
    for t in range(len(distance) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _runs(requests: Sequence[LipSyncRequest]) -> list[list[int]]:
    """Positions grouped into runs of consecutive frames of one avatar (ping-pong steps are ±1)."""
    runs: list[list[int]] = []
    for position, request in enumerate(requests):
        if runs:
            previous = requests[runs[-1][-1]]
            if previous.avatar is request.avatar and abs(previous.frame_index - request.frame_index) <= 1:
                runs[-1].append(position)
                continue
        runs.append([position])
    return runs


class AtlasLipSync(LipSyncEngine):
    """Sample-based lip-sync from the avatar's own mouth atlas. No weights; one batch is one vectorised pass."""

    name = "atlas"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(device)
        self._fitted: dict[Path, FittedAvatar] = {}
        self.parts: dict[int, BaseParts] = {}  # by the avatar object's id, while it lives
        self._lock = threading.Lock()

    def fitted(self, avatar: AvatarBundle) -> FittedAvatar:
        """The avatar's atlas and per-frame fit, loaded once per process."""
        with self._lock:
            fitted = self._fitted.get(avatar.path)
            if fitted is None:
                atlas = MouthAtlas.load(avatar.extra_folder(ATLAS))
                size = (avatar.manifest.height, avatar.manifest.width)
                fitted = self._fitted[avatar.path] = fit_avatar(atlas, avatar.landmarks, size)
            return fitted

    def base_parts(self, avatar: AvatarBundle) -> BaseParts:
        """The avatar's kept base-frame parts: they go when the avatar object does (roles come and go)."""
        fitted = self.fitted(avatar)
        with self._lock:
            parts = self.parts.get(id(avatar))
            if parts is None:
                parts = self.parts[id(avatar)] = BaseParts(fitted)
                weakref.finalize(avatar, self.parts.pop, id(avatar), None)
            return parts

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        shapes = mouth_shapes([r.audio for r in requests], np.stack([r.mel for r in requests]))
        out: list[np.ndarray | None] = [None] * len(requests)
        by_avatar: dict[int, list[list[int]]] = {}
        for run in _runs(requests):
            by_avatar.setdefault(id(requests[run[0]].avatar), []).append(run)
        for runs in by_avatar.values():
            # All frames of one avatar in one pass (a batch of many sessions holds a short run of each); entries
            # are chosen along each run, one session's consecutive frames.
            avatar = requests[runs[0][0]].avatar
            fitted = self.fitted(avatar)
            positions = [position for run in runs for position in run]
            ends = np.cumsum([len(run) for run in runs])
            indices = np.array([requests[p].frame_index for p in positions])
            targets = target_shapes(fitted, shapes[positions])
            slices = [slice(end - len(run), end) for run, end in zip(runs, ends, strict=True)]
            entries, weights = choose_entries(fitted, targets, indices, slices)
            frames = compose(fitted, self.base_parts(avatar), avatar.frames, indices, entries, weights)
            for position, frame in zip(positions, frames, strict=True):
                out[position] = frame
        return out  # type: ignore[return-value]


def jaw_shift(fitted: FittedAvatar, indices: np.ndarray, drop: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """(B, H, W) downward shift in canvas pixels that moves each base frame's jaw by ``drop`` (B,) pixels: nothing
    above the mouth corners, rising to the full drop at the lower lip, held to the chin, settling back to nothing
    below it. Shifts grow no faster than the rows they pass, so the skin stretches without folding."""
    rows = np.arange(fitted.atlas.space.height, dtype=np.float32)[None, :]
    line, lower, chin = (a[indices][:, None] for a in (fitted.lip_line, fitted.lower_lip, fitted.chin))
    size = np.abs(drop)[:, None]
    rise = smoothstep((rows - line) / np.maximum(np.maximum(lower - line, 1.5 * size), 2.0))
    settle = 1 - smoothstep((rows - chin) / (0.12 * fitted.atlas.space.scale + 1.5 * size))
    profile = np.where(rows < chin, rise, settle) * drop[:, None]
    return profile[:, :, None] * fitted.jaw_columns[None, None, :] * inside


def inside_faces(space: MouthSpace, ovals: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 weights (255 = 1): 1 well inside each base frame's face outline ((N, 36, 2) canvas), fading
    to 0 before its edge, so moving the jaw never drags the background or the neck across the outline of a turned
    face. They depend on the base frame alone, so they are drawn once per avatar (12 kB a frame at 512 px)."""
    feather = max(3, round(0.04 * space.scale) | 1)
    out = np.empty((len(ovals), space.height, space.width), np.uint8)
    for k, oval in enumerate(ovals):
        mask = np.zeros((space.height, space.width), np.uint8)
        # Below the chin the skin may move (it settles back lower down): extend the outline straight down there.
        left, right = oval[CHIN_NEIGHBOURS[0]], oval[CHIN_NEIGHBOURS[1]]
        below = np.array([left, right, (right[0], space.height), (left[0], space.height)])
        cv2.fillPoly(mask, [np.round(oval).astype(np.int32), np.round(below).astype(np.int32)], 255)
        mask = cv2.erode(mask, np.ones((feather, feather), np.uint8))
        out[k] = cv2.GaussianBlur(mask, (2 * feather + 1, 2 * feather + 1), 0)
    return out


def own_faces(space: MouthSpace, ovals: np.ndarray) -> np.ndarray:
    """(K, H, W) weights: 1 inside each atlas entry's own face outline ((K, 36, 2) canvas) and below its chin,
    fading to 0 across the outline: a mouth cut from a turned head brings no background or shoulder with it."""
    feather = max(1, round(0.02 * space.scale)) | 1
    out = np.empty((len(ovals), space.height, space.width), np.float32)
    for k, oval in enumerate(ovals):
        mask = np.zeros((space.height, space.width), np.uint8)
        left, right = oval[CHIN_NEIGHBOURS[0]], oval[CHIN_NEIGHBOURS[1]]
        below = np.array([left, right, (right[0], space.height), (left[0], space.height)])
        cv2.fillPoly(mask, [np.round(oval).astype(np.int32), np.round(below).astype(np.int32)], 255)
        out[k] = cv2.GaussianBlur(mask, (2 * feather + 1, 2 * feather + 1), 0) / 255.0
    return out


def aligned_lips(fitted: FittedAvatar, indices: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """(B, 20, 2) canvas: where each chosen mouth's outer lip contour lands once align_upper_lips has moved it
    (the field is sampled backwards, so each point is found by two fixed-point steps)."""
    target = fitted.upper_lips[indices]
    offsets = target - fitted.atlas.lips[entries][:, UPPER_INDICES]
    reach = 2 * (ALIGN_REACH * fitted.atlas.space.scale) ** 2
    source = fitted.atlas.lips[entries][:, : len(OUTER_LIPS)]
    landed = source
    for _ in range(2):
        weight = np.exp(-((landed[:, :, None, :] - target[:, None, :, :]) ** 2).sum(axis=3) / reach)  # (B, 20, 13)
        landed = source + (weight @ offsets) / (weight.sum(axis=2, keepdims=True) + 0.05)
    return landed


def mouth_masks(fitted: FittedAvatar, indices: np.ndarray, lips: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """(B, H, W) weights where the chosen mouth replaces the base frame's: 1 over the hull of both mouths (the
    chosen one where it landed, the base frame's before and after its jaw moved) down to the chin (before and
    after it moved) and a margin around it, feathered to 0. Drawn per frame from the landmarks, so no part of the
    base frame's own mouth shows through whatever head pose either frame has, and the chin comes with the mouth
    (the face mesh, like a viewer, reads an open mouth from the jaw as much as from the lips)."""
    space = fitted.atlas.space
    base = fitted.outer_lips[indices]
    moved = base[:, : len(OUTER_LIPS_LOWER)] + np.stack([np.zeros_like(drop), drop], axis=1)[:, None, :]
    margin = max(1, round(MOUTH_MARGIN * space.scale))
    feather = max(1, round(MOUTH_FEATHER * space.scale)) | 1
    out = np.zeros((len(indices), space.height, space.width), np.float32)
    chin = fitted.face_ovals[indices][:, CHIN_ARC]
    lowered = np.stack([np.zeros_like(drop), drop], axis=1)[:, None, :]
    reach = margin + feather + 2  # how far past the hull the grown, blurred mask can reach
    for k, points in enumerate(np.concatenate([base, moved, lips, chin, chin + lowered], axis=1)):
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        # Drawn and blurred only in the hull's box grown by that reach: the zeros around it blur to the same
        # pixels the whole canvas would, at a fraction of the cost.
        x0, y0 = np.maximum(hull.min(axis=(0, 1)) - reach, 0)
        x1, y1 = np.minimum(hull.max(axis=(0, 1)) + reach + 1, (space.width, space.height))
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        hull -= (x0, y0)
        cv2.fillConvexPoly(mask, hull, 255)
        cv2.polylines(mask, [hull], True, 255, thickness=2 * margin + 1)  # the hull grown by the margin
        np.divide(cv2.GaussianBlur(mask, (2 * feather + 1, 2 * feather + 1), 0), _BYTE, out=out[k, y0:y1, x0:x1])
    return out


def align_upper_lips(fitted: FittedAvatar, indices: np.ndarray, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, W) canvas maps (x, y) that move each chosen mouth so its upper lip and corners land on the base
    frame's own: a smooth field interpolating the 13 points' offsets, fading to nothing a few points' spacing
    away. The lower lip rides along, so the opening is the chosen mouth's."""
    space = fitted.atlas.space
    target = fitted.upper_lips[indices]  # (B, 13, 2): where the points must end up
    offsets = target - fitted.atlas.lips[entries][:, UPPER_INDICES]
    xs = np.arange(space.width, dtype=np.float32)
    ys = np.arange(space.height, dtype=np.float32)
    reach = 2 * (ALIGN_REACH * space.scale) ** 2
    wx = np.exp(-((xs[None, None, :] - target[:, :, 0:1]) ** 2) / reach)  # (B, 13, W)
    wy = np.exp(-((ys[None, None, :] - target[:, :, 1:2]) ** 2) / reach)  # (B, 13, H)
    # Each point's weight is separable (rows × columns), so the sums over points are batched matrix products.
    rows = wy.transpose(0, 2, 1)  # (B, H, 13)
    total = rows @ wx + 0.05
    shift_x = ((rows * offsets[:, None, :, 0]) @ wx) / total
    shift_y = ((rows * offsets[:, None, :, 1]) @ wx) / total
    return xs[None, None, :] - shift_x, ys[None, :, None] - shift_y


def colour_gains(bases: np.ndarray, patches: np.ndarray, mouth: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(B, 3) per-channel gains that make each patch's colour agree with its base frame's where the mouth fades
    into the base (the feather of ``mouth`` (B, H, W)), counting only what is face in both frames (``faces``
    (B, H, W)): measured per frame, so neither a turned head's background nor a different part of the face
    decides it."""
    count = len(mouth)
    ring = (((mouth > 0.05) & (mouth < 0.7)) * faces).reshape(count, 1, -1)
    base = (ring @ bases.reshape(count, -1, 3))[:, 0]
    patch = (ring @ patches.reshape(count, -1, 3))[:, 0]
    return np.clip(base / np.maximum(patch, 1.0), *GAIN_LIMITS).astype(np.float32)


class BaseParts:
    """Per base frame, what composing on it needs that depends on that frame alone: its face cut onto the canvas
    and the weights that paste the canvas back into its box. Idle loops and speech walk the same base frames again
    and again (and sessions of one avatar share them), so they are kept for the frames used last, up to
    BASE_PARTS_BYTES per avatar (about 90 kB a frame)."""

    def __init__(self, fitted: FittedAvatar) -> None:
        self.fitted = fitted
        self._kept: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.nbytes = 0  # what is kept
        self._lock = threading.Lock()

    def get(self, frames: Sequence[np.ndarray], index: int) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8: frame ``index``'s face on the canvas; (h, w, 1) float32: the paste-back weights in
        its box (empty when the box is)."""
        with self._lock:
            kept = self._kept.get(index)
            if kept is not None:
                self._kept.move_to_end(index)
                return kept
        kept = self._cut(frames, index)
        with self._lock:
            if index not in self._kept:
                self._kept[index] = kept
                self.nbytes += sum(part.nbytes for part in kept)
                while self.nbytes > BASE_PARTS_BYTES and len(self._kept) > 1:
                    self.nbytes -= sum(part.nbytes for part in self._kept.popitem(last=False)[1])
        return kept

    def _cut(self, frames: Sequence[np.ndarray], index: int) -> tuple[np.ndarray, np.ndarray]:
        fitted, space = self.fitted, self.fitted.atlas.space
        to_canvas = invert_similarity(fitted.to_frame[index : index + 1])[0]
        face = cv2.warpAffine(
            np.ascontiguousarray(frames[index]),
            to_canvas,
            (space.width, space.height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        x1, y1, x2, y2 = fitted.boxes[index]
        if x2 <= x1 or y2 <= y1:
            return face, np.zeros((0, 0, 1), np.float32)
        box = (int(x2 - x1), int(y2 - y1))
        alpha = cv2.warpAffine(fitted.region, _box_matrix(fitted, index), box, flags=cv2.INTER_LINEAR, borderValue=0)
        return face, alpha[..., None]


def _box_matrix(fitted: FittedAvatar, index: int) -> np.ndarray:
    """Canvas → frame ``index``'s box (its mask's support)."""
    matrix = fitted.to_frame[index].copy()
    matrix[:, 2] -= fitted.boxes[index, :2]
    return matrix


def compose(
    fitted: FittedAvatar,
    parts: BaseParts,
    frames: Sequence[np.ndarray],
    indices: np.ndarray,
    entries: np.ndarray,
    weights: np.ndarray,
) -> list[np.ndarray]:
    """Per request: cut the base frame's lower face onto the canvas, move its jaw to the chosen mouth's, lay the
    blended, colour-matched atlas mouth over it, and paste the result back through the feathered region mask."""
    atlas, space = fitted.atlas, fitted.atlas.space
    map_x, map_y = align_upper_lips(fitted, indices, entries[:, 0])
    patches = atlas.patches[entries[:, 0]].astype(np.float32)
    if weights[:, 1].any():  # the runner-up blended in
        patches *= weights[:, 0, None, None, None]
        patches += weights[:, 1, None, None, None] * atlas.patches[entries[:, 1]]
    aligned = np.empty_like(patches)
    for patch, mx, my, into in zip(patches, map_x, map_y, aligned, strict=True):
        cv2.remap(patch, mx, my, cv2.INTER_LINEAR, dst=into, borderMode=cv2.BORDER_REPLICATE)
    drop = ((weights * atlas.chins[entries]).sum(axis=1) - fitted.chin[indices]).astype(np.float32)
    inside = fitted.inside_faces[indices] / _BYTE
    shift = jaw_shift(fitted, indices, drop, inside)
    xs = np.broadcast_to(np.arange(space.width, dtype=np.float32), (space.height, space.width))
    ys = np.arange(space.height, dtype=np.float32)[:, None]
    faces, alphas = zip(*(parts.get(frames, index) for index in indices), strict=True)
    moved = np.empty((len(indices), space.height, space.width, 3), np.uint8)
    for face, dy, into in zip(faces, shift, moved, strict=True):
        cv2.remap(face, xs, ys - dy, cv2.INTER_LINEAR, dst=into, borderMode=cv2.BORDER_REPLICATE)
    bases = moved.astype(np.float32)
    # The mouth is laid in also past the base face's outline (a chin that drops must cover what was below it),
    # but only where its own frame had face.
    mouth = mouth_masks(fitted, indices, aligned_lips(fitted, indices, entries[:, 0]), drop)[..., None]

    own = fitted.own_faces[entries[:, 0]]
    mouth *= own[..., None]
    aligned *= colour_gains(bases, aligned, mouth[..., 0], inside * own)[:, None, None, :]
    canvases = aligned  # bases + mouth * (aligned - bases), in place
    canvases -= bases
    canvases *= mouth
    canvases += bases
    results = []
    for canvas, index, alpha in zip(canvases, indices, alphas, strict=True):
        frame = np.array(frames[index])
        if alpha.size:
            x1, y1, x2, y2 = fitted.boxes[index]
            box = (int(x2 - x1), int(y2 - y1))
            warped = cv2.warpAffine(
                canvas, _box_matrix(fitted, index), box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            region = frame[y1:y2, x1:x2].astype(np.float32)
            warped -= region
            warped *= alpha
            region += warped
            region += 0.5
            frame[y1:y2, x1:x2] = np.clip(region, 0, 255, out=region)
        results.append(frame)
    return results
