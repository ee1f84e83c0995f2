"""Open a built avatar bundle: validated, frames decoded on demand, arrays memory-mapped read-only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from realtime.face import topology

from .format import EXTRAS_DIR, LANDMARKS_FILE, POSE_FILE, Manifest, UnsupportedBundle
from .frames import FrameStore
from .idle_loop import IdleLoopFrames


class AvatarBundle:
    """A bundle's frames, landmarks, pose and boxes. ``frames[i]`` (or ``frame(i)``) decodes through
    one bounded cache per bundle; the other arrays are memory-mapped, so every session and every process
    that opens the same bundle shares one copy in the page cache. A photo's one frame is shown as its idle
    loop: ``frames`` and ``landmarks`` are the loop's."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        frames: Sequence[np.ndarray],
        landmarks: np.ndarray,
        pose: np.ndarray,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.frames = frames
        self.landmarks = landmarks
        self.pose = pose
        # A photo's one box serves every frame of its loop (the loop moves the face by a pixel or two).
        repeat = len(landmarks) if manifest.frame_count == 1 else 1
        self.face_boxes = np.repeat(np.asarray(manifest.face_boxes, dtype=np.int32).reshape(-1, 4), repeat, axis=0)
        self.mouth_boxes = np.repeat(np.asarray(manifest.mouth_boxes, dtype=np.int32).reshape(-1, 4), repeat, axis=0)

    @classmethod
    def open(cls, path: str | Path, cache_bytes: int = 0) -> AvatarBundle:
        """``cache_bytes``: decoded frames kept in memory. A worker's model pool passes the AVATAR_FRAME_CACHE_MB
        setting; 0 keeps only the frame last read, enough to inspect a bundle (its manifest, a preview)."""
        path = Path(path)
        manifest = Manifest.read(path)
        n = manifest.frame_count
        frames: Sequence[np.ndarray] = FrameStore(path, n, manifest.height, manifest.width, cache_bytes)
        landmarks = _load(path / LANDMARKS_FILE, (n, 468, 2), np.float32)
        pose = _load(path / POSE_FILE, (n, 3), np.float32)
        if manifest.kind == "photo":  # one portrait: it is shown as its idle loop (blinks, sway, breathing)
            frames = IdleLoopFrames(frames[0], landmarks[0], manifest.fps)
            landmarks = frames.landmarks
            pose = np.repeat(pose[:1], len(landmarks), axis=0)
        return cls(path, manifest, frames, landmarks, pose)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as a read-only (H, W, 3) uint8 RGB array."""
        return self.frames[index]

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def lips(self) -> dict[str, np.ndarray]:
        """Per-frame lip contours in frame pixels: "outer" and "inner", each (N, 20, 2), closed loops from the
        image-left mouth corner along the lower lip and back along the upper one."""
        return {
            "outer": self.landmarks[:, list(topology.OUTER_LIPS)],
            "inner": self.landmarks[:, list(topology.INNER_LIPS)],
        }

    def extra_folder(self, name: str) -> Path:
        """The folder an extra builder wrote at build time; refuses a bundle built without it."""
        folder = self.path / EXTRAS_DIR / name
        if name not in self.manifest.extras or not folder.is_dir():
            raise UnsupportedBundle(f"Avatar bundle {self.path} has no {name!r} data; rebuild the avatar")
        return folder

    @property
    def fps(self) -> int:
        return self.manifest.fps

    @property
    def frame_count(self) -> int:
        """Frames on show: the stored ones, or a photo's idle loop."""
        return len(self.landmarks)

    def pingpong_index(self, tick: int) -> int:
        """Frame to show at clock tick ``tick``: forwards then backwards, so the loop has no jump."""
        n = self.frame_count
        if n <= 1:
            return 0
        period = 2 * n - 2
        position = tick % period
        return position if position < n else period - position


def _load(path: Path, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise UnsupportedBundle(f"Avatar bundle file {path} is missing; rebuild the avatar") from None
    except ValueError as exc:
        raise UnsupportedBundle(f"Avatar bundle file {path} is unreadable: {exc}") from None
    if array.shape != shape or array.dtype != dtype:
        raise UnsupportedBundle(f"{path} is {array.shape} {array.dtype}; expected {shape} {np.dtype(dtype)}")
    return array
