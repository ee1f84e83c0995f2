"""Write a ``.npy`` file one row at a time, when the row count is known only at the end.

The decoder cannot know how many frames it will emit (variable frame rate, missing or wrong container
durations), and a 60-s 720p clip is about 4 GB of RGB frames. Appending with ``write()`` keeps the process's
memory flat: pages written through a writable ``open_memmap`` stay mapped into the process and count in its
RSS until unmapped. The header is written with a fixed reserved size and rewritten with the final shape on
close, so the result is an ordinary ``.npy`` that ``np.load(..., mmap_mode="r")`` opens.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import TracebackType

import numpy as np

_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0: a 2-byte header length
_HEADER_BYTES = 128  # room for any 4-D shape; a multiple of 64 keeps the data aligned as numpy writes it


def _header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    body_len = _HEADER_BYTES - len(_MAGIC) - 2
    body = text.encode("latin1").ljust(body_len - 1) + b"\n"
    if len(body) != body_len:
        raise ValueError(f"shape {shape} does not fit a {_HEADER_BYTES}-byte .npy header")
    return _MAGIC + struct.pack("<H", body_len) + body


class NpyAppender:
    """Append arrays of one shape and dtype as rows of a growing ``(n, *row_shape)`` array on disk."""

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> None:
        self.path = Path(path)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._file = self.path.open("wb")
        self._file.write(_header((0, *self.row_shape), self.dtype))

    def append(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape or row.dtype != self.dtype:
            raise ValueError(f"row is {row.shape} {row.dtype}; this file holds {self.row_shape} {self.dtype}")
        self._file.write(np.ascontiguousarray(row).data)
        self.count += 1

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.seek(0)
        self._file.write(_header((self.count, *self.row_shape), self.dtype))
        self._file.close()

    def __enter__(self) -> NpyAppender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
