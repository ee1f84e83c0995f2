"""Open a built avatar bundle: validated, memory-mapped, read-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .format import FRAMES_FILE, Manifest, UnsupportedBundle, crops_file


class AvatarBundle:
    """A bundle's frames, crops and boxes. Arrays are memory-mapped read-only, so every session and every
    process that opens the same bundle shares one copy in the page cache."""

    def __init__(self, path: Path, manifest: Manifest, frames: np.ndarray, crops: dict[int, np.ndarray]) -> None:
        self.path = path
        self.manifest = manifest
        self.frames = frames
        self.crops = crops
        self.face_boxes = np.asarray(manifest.face_boxes, dtype=np.int32).reshape(-1, 4)
        self.mouth_boxes = np.asarray(manifest.mouth_boxes, dtype=np.int32).reshape(-1, 4)

    @classmethod
    def open(cls, path: str | Path) -> AvatarBundle:
        path = Path(path)
        manifest = Manifest.read(path)
        frames = _load(path / FRAMES_FILE)
        expected = (manifest.frame_count, manifest.height, manifest.width, 3)
        if frames.shape != expected or frames.dtype != np.uint8:
            raise UnsupportedBundle(
                f"{path / FRAMES_FILE} is {frames.shape} {frames.dtype}; manifest says {expected} uint8"
            )
        crops = {}
        for size in manifest.crop_sizes:
            array = _load(path / crops_file(size))
            if array.shape != (manifest.frame_count, size, size, 3):
                raise UnsupportedBundle(f"{path / crops_file(size)} is {array.shape}; expected {size}×{size} crops")
            crops[size] = array
        return cls(path, manifest, frames, crops)

    @property
    def fps(self) -> int:
        return self.manifest.fps

    @property
    def frame_count(self) -> int:
        return self.manifest.frame_count

    def pingpong_index(self, tick: int) -> int:
        """Frame to show at clock tick ``tick``: forwards then backwards, so the loop has no jump."""
        n = self.frame_count
        if n <= 1:
            return 0
        period = 2 * n - 2
        position = tick % period
        return position if position < n else period - position


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise UnsupportedBundle(f"Avatar bundle file {path} is missing; rebuild the avatar") from None
    except ValueError as exc:
        raise UnsupportedBundle(f"Avatar bundle file {path} is unreadable: {exc}") from None
