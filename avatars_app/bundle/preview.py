"""What an operator checks before using an avatar: a strip of the bundle's frames with what the build found drawn
on them: the face box (green) and the lips as detected (red: outer contour, yellow: inner), and under the tiles the
source's timeline with the kept span (blue) and where each tile comes from (white ticks); and the grid of the
person's mouths the atlas holds."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.avatar.format import UnsupportedBundle
from realtime.avatar.reader import AvatarBundle
from realtime.engines.lipsync.mouth_atlas import ATLAS, AtlasMissing, MouthAtlas, atlas_grid

FACE_COLOUR = (40, 200, 70)
LIPS_COLOUR = (230, 40, 40)
INNER_LIPS_COLOUR = (250, 220, 40)
SPAN_COLOUR = (40, 110, 230)
TIMELINE_COLOUR = (200, 200, 200)
TIMELINE_HEIGHT = 10
_GAP = 4  # white pixels between tiles


def preview_strip(bundle: AvatarBundle, count: int = 6, height: int = 160) -> np.ndarray:
    """``count`` frames spread over the clip, each scaled to ``height`` pixels, side by side, over the timeline
    band (RGB uint8). A photo is one tile: its bundle repeats the portrait for the idle loop, and a row of the same
    picture would read as a video."""
    if bundle.kind == "photo":
        count = 1
    indices = sorted(set(np.linspace(0, bundle.frame_count - 1, count).round().astype(int).tolist()))
    scale = height / bundle.manifest.height
    width = max(1, round(bundle.manifest.width * scale))
    thickness = max(1, round(2 / scale))  # about 2 pixels once scaled down
    lips = bundle.lips
    tiles = []
    for index in indices:
        frame = np.array(bundle.frames[index])  # a writable copy of the shared decoded frame
        x1, y1, x2, y2 = (int(v) for v in bundle.face_boxes[index])
        cv2.rectangle(frame, (x1, y1), (x2 - 1, y2 - 1), FACE_COLOUR, thickness)
        tile = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        for contour, colour in ((lips["inner"][index], INNER_LIPS_COLOUR), (lips["outer"][index], LIPS_COLOUR)):
            cv2.polylines(tile, [np.round(contour * scale).astype(np.int32)], True, colour, 1)  # thin: lips are small
        tiles.append(tile)
        tiles.append(np.full((height, _GAP, 3), 255, np.uint8))
    strip = np.hstack(tiles[:-1])
    return np.vstack([strip, _timeline(bundle, indices, strip.shape[1])])


def _timeline(bundle: AvatarBundle, indices: list[int], width: int) -> np.ndarray:
    band = np.full((TIMELINE_HEIGHT, width, 3), 255, np.uint8)
    total = bundle.manifest.source_seconds
    if total <= 0:  # a photo: no timeline
        return band
    start, end = bundle.manifest.kept_span
    band[2:-2] = TIMELINE_COLOUR
    band[2:-2, round(width * start / total) : max(round(width * end / total), 1)] = SPAN_COLOUR
    for index in indices:
        at = min(width - 1, round(width * (start + index / bundle.fps) / total))
        band[:, at] = 255
    return band


def preview_png(bundle: AvatarBundle, count: int = 6, height: int = 160) -> bytes:
    return _png(preview_strip(bundle, count, height))


def atlas_png(bundle: AvatarBundle) -> bytes | None:
    """The bundle's mouth atlas as a grid (opening down, width across), or None for a bundle without one."""
    if not bundle.manifest.extras.get(ATLAS, {}).get("built"):
        return None
    try:
        grid = atlas_grid(MouthAtlas.load(bundle.extra_folder(ATLAS)))
    except (AtlasMissing, UnsupportedBundle):
        return None
    return _png(grid)


def _png(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding of the preview failed")
    return encoded.tobytes()
