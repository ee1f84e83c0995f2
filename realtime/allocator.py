"""glibc's malloc in a worker: keep freed memory for reuse while sessions run, give it back when one ends.

glibc's malloc serves a block above its mmap threshold with fresh pages and hands free heap above its trim
threshold back to the kernel. Both start at 128 KiB and rise only as far as the largest block freed so far, so
until a worker had once freed a block the size of a whole batch, every batch of 8 frames (8.8 MB of frames at
720x528, as much again in temporaries) was handed back when freed and faulted in again, page by page, by the
next batch: a batch of 8 rendered fewer frames per CPU second than one frame per call, and how many depended on
what the process had run before. Set once where the model pool starts (``keep_freed_memory``), the thresholds
every worker reaches sooner or later hold from its first batch. An operator's own ``MALLOC_*_`` settings (or
``GLIBC_TUNABLES``) win: then nothing is changed.

Memory kept that way stays resident in the heap arenas after the session that freed it is gone: RSS would
keep every peak of every session. So ``trim_later`` has ``malloc_trim(0)`` (glibc ≥ 2.8) walk every arena a
moment after a session ends and ``madvise`` its whole free pages back to the kernel: the next session faults
in once the pages it touches, where a low mmap threshold (``MALLOC_MMAP_THRESHOLD_``) would fault in every
frame's. The moment (``SETTLE_S``) is for work the session started that goes on after it closed (a sentence
being synthesised, a batch being rendered, in executor threads) and frees its memory when it ends. A trim with
much to give back takes tens of milliseconds and holds each arena's lock while it walks it: never per frame,
never on the event loop. ``malloc_trim`` leaves the top of each thread's arena (up to the trim threshold)
resident.

Elsewhere (musl, macOS; jemalloc preloaded, with arenas of its own) nothing here changes anything that matters.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time

from .metrics import HEAP_TRIM_SECONDS

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # the most glibc's own threshold rises to on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # as glibc pairs them
OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
# A closed session's last work ends within a second on a busy 2-core machine (bench.memory's rounds: RSS
# settled 0.5–1 s after the last close); twice that, to be sure.
SETTLE_S = 2.0


def _glibc(name: str) -> ctypes._CFuncPtr | None:
    """The C library's function ``name``, or None where it has none (not glibc)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _glibc("malloc_trim")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (idempotent). False where nothing was changed:
    not glibc, or the operator set the allocator up through the environment."""
    if any(name in os.environ for name in OPERATOR_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def trim() -> bool:
    """Hand every arena's whole free pages back to the kernel; True when the C library released any. Blocks
    for tens of milliseconds (hundreds on a busy machine): call it off the event loop (``trim_later``)."""
    if _MALLOC_TRIM is None:
        return False
    started = time.perf_counter()
    released = _MALLOC_TRIM(ctypes.c_size_t(0)) == 1  # keep no padding at the top of the main heap
    HEAP_TRIM_SECONDS.observe(time.perf_counter() - started)
    return released


def trim_later(delay_s: float = SETTLE_S) -> None:
    """``trim`` in a thread of its own, ``delay_s`` from now (a daemon: it never holds the process up)."""
    timer = threading.Timer(delay_s, trim)
    timer.daemon = True
    timer.start()
