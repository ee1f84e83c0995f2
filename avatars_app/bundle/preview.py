"""A strip of a bundle's frames with the face box (green) and mouth box (red) drawn: what an operator checks
before using an avatar."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.avatar.reader import AvatarBundle

FACE_COLOUR = (40, 200, 70)
MOUTH_COLOUR = (230, 40, 40)
_GAP = 4  # white pixels between tiles


def preview_strip(bundle: AvatarBundle, count: int = 6, height: int = 160) -> np.ndarray:
    """``count`` frames spread over the clip, each scaled to ``height`` pixels, side by side (RGB uint8)."""
    indices = sorted(set(np.linspace(0, bundle.frame_count - 1, count).round().astype(int).tolist()))
    scale = height / bundle.manifest.height
    width = max(1, round(bundle.manifest.width * scale))
    thickness = max(1, round(2 / scale))  # about 2 pixels once scaled down
    tiles = []
    for index in indices:
        frame = np.array(bundle.frames[index])  # a writable copy of one memory-mapped frame
        for box, colour in ((bundle.face_boxes[index], FACE_COLOUR), (bundle.mouth_boxes[index], MOUTH_COLOUR)):
            x1, y1, x2, y2 = (int(v) for v in box)
            cv2.rectangle(frame, (x1, y1), (x2 - 1, y2 - 1), colour, thickness)
        tiles.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
        tiles.append(np.full((height, _GAP, 3), 255, np.uint8))
    return np.hstack(tiles[:-1])


def preview_png(bundle: AvatarBundle, count: int = 6, height: int = 160) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(preview_strip(bundle, count, height), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding of the preview failed")
    return encoded.tobytes()
