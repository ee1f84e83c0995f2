"""Base frames stored as per-frame JPEGs, decoded on demand through a cache shared by every session.

Measured on this project's 2-core machine (``bench/avatar_build.py`` prints it per run): a 1280×720 frame is
about 130 KB as JPEG at quality 90 against 2.7 MB raw, and decodes in 6–12 ms; WebP at the same quality is
about half the size but decodes 1.7× slower. A keyframe-addressable video would be smaller still, but the
idle loop plays the frames forwards and backwards (ping-pong), and backwards through a GOP decodes up to a GOP
per frame; per-frame JPEGs give every frame at the same cost in either direction.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from .format import FRAME_INDEX_FILE, FRAMES_FILE, UnsupportedBundle

JPEG_QUALITY = 90


class FrameWriter:
    """Append RGB frames to a bundle folder as JPEGs; ``close`` writes the offsets that address them."""

    def __init__(self, folder: Path, quality: int = JPEG_QUALITY) -> None:
        self.folder = Path(folder)
        self.quality = quality
        self._file = open(self.folder / FRAMES_FILE, "wb")  # noqa: SIM115 - closed by close()
        self._offsets = [0]

    @property
    def count(self) -> int:
        return len(self._offsets) - 1

    @property
    def bytes_written(self) -> int:
        return self._offsets[-1]

    def append(self, rgb: np.ndarray) -> None:
        ok, encoded = cv2.imencode(
            ".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding of a frame failed")
        self._file.write(encoded.tobytes())
        self._offsets.append(self._offsets[-1] + len(encoded))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            np.save(self.folder / FRAME_INDEX_FILE, np.asarray(self._offsets, np.int64))

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FrameStore:
    """The frames of one bundle: ``store[i]`` is frame i as a read-only (H, W, 3) uint8 RGB array.

    The JPEG bytes are memory-mapped (shared between processes through the page cache); decoded frames are
    kept in an LRU bounded by ``cache_bytes``. One store per bundle per process (the model pool shares the
    bundle), so every session of an avatar hits the same cache. Thread-safe: frames are decoded in executors.
    """

    def __init__(self, folder: Path, frame_count: int, height: int, width: int, cache_bytes: int) -> None:
        self.folder = Path(folder)
        self.shape = (frame_count, height, width, 3)
        try:
            self._offsets = np.load(self.folder / FRAME_INDEX_FILE)
            self._data = np.memmap(self.folder / FRAMES_FILE, dtype=np.uint8, mode="r")
        except (FileNotFoundError, ValueError) as exc:
            raise UnsupportedBundle(f"Avatar bundle {folder}: the frames are missing or unreadable ({exc})") from None
        if self._offsets.shape != (frame_count + 1,) or int(self._offsets[-1]) != self._data.size:
            raise UnsupportedBundle(f"Avatar bundle {folder}: the frame index does not match {FRAMES_FILE}")
        self._capacity = max(1, cache_bytes // (height * width * 3))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.decoded = 0  # frames decoded since opening (cache misses), for tests and metrics

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | Sequence[int]) -> np.ndarray:
        if not np.isscalar(index):  # a list of frames, as an array indexes: stacked copies
            return np.stack([self[i] for i in index])
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} of {len(self)}")
        index %= len(self)
        with self._lock:
            frame = self._cache.get(index)
            if frame is not None:
                self._cache.move_to_end(index)
                return frame
        frame = self._decode(index)
        with self._lock:
            self.decoded += 1
            self._cache[index] = frame
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return frame

    def encoded_size(self, index: int) -> int:
        return int(self._offsets[index + 1] - self._offsets[index])

    def _decode(self, index: int) -> np.ndarray:
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        bgr = cv2.imdecode(self._data[start:end], cv2.IMREAD_COLOR)
        if bgr is None or bgr.shape != self.shape[1:]:
            raise UnsupportedBundle(f"Avatar bundle {self.folder}: frame {index} does not decode to {self.shape[1:]}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False  # shared by every session: nobody may paint on it
        return rgb


def keep_frames(folder: Path, start: int, end: int) -> None:
    """Cut a written frame store down to frames [start, end), copying their JPEG bytes (no re-encoding)."""
    folder = Path(folder)
    offsets = np.load(folder / FRAME_INDEX_FILE)
    data = np.memmap(folder / FRAMES_FILE, dtype=np.uint8, mode="r")
    tmp = folder / (FRAMES_FILE + ".tmp")
    with tmp.open("wb") as out:
        out.write(data[int(offsets[start]) : int(offsets[end])].tobytes())
    del data
    tmp.replace(folder / FRAMES_FILE)
    np.save(folder / FRAME_INDEX_FILE, offsets[start : end + 1] - offsets[start])
