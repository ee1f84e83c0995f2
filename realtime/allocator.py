"""Keep freed memory for reuse: lip-sync batches allocate and free their frames in bursts.

glibc's malloc serves a block above its mmap threshold with fresh pages and hands free heap above its trim
threshold back to the kernel. Both start at 128 KiB and rise only as far as the largest block freed so far, so
until a worker had once freed a block the size of a whole batch, every batch of 8 frames (8.8 MB of frames at
720x528, as much again in temporaries) was handed back when freed and faulted in again, page by page, by the
next batch: a batch of 8 rendered fewer frames per CPU second than one frame per call, and how many depended on
what the process had run before. Set once where the model pool starts, the thresholds every worker reaches
sooner or later hold from its first batch (README, Memory: the heap keeps its peaks either way).

An operator's own ``MALLOC_*_`` settings (or ``GLIBC_TUNABLES``) win: then nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # the most glibc's own threshold rises to on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # as glibc pairs them
OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (idempotent). False where nothing was changed:
    not glibc, or the operator set the allocator up through the environment."""
    if any(name in os.environ for name in OPERATOR_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
