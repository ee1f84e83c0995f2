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
moment after the worker's last session ends and ``madvise`` its whole free pages back to the kernel: the next
session faults in once the pages it touches, where a low mmap threshold (``MALLOC_MMAP_THRESHOLD_``) would
fault in every frame's. The moment (``SETTLE_S``) is for work the session started that goes on after it
closed (a sentence being synthesised, a batch being rendered, in executor threads) and frees its memory when
it ends. A trim with much to give back takes tens of milliseconds and holds each arena's lock while it walks
it, stalling every thread that allocates: so only an idle worker trims, never one whose sessions' media would
wait for it. While sessions run, what the ended ones freed is what the next ones reuse. ``malloc_trim`` leaves
the top of each thread arena (up to the trim threshold) resident, so ``keep_freed_memory`` also has the
threads started after it share glibc's main arena.

Elsewhere (musl, macOS; jemalloc preloaded, with arenas of its own) nothing here changes anything that matters.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
import time
from collections.abc import Callable

from .metrics import HEAP_TRIM_SECONDS

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # the most glibc's own threshold rises to on 64-bit
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # as glibc pairs them
OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
# One arena for the whole worker: malloc_trim gives back the main arena's top but no thread arena's, which
# kept up to a trim threshold each (bench.memory: +176 MB after 101 sessions with glibc's up to 16 arenas on 2
# cores, +62 with one, at the same CPU per session within this busy machine's noise).
ARENAS = 1
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
    """Raise glibc's mmap and trim thresholds for this process and have the threads started from now on share
    one arena (idempotent). False where nothing was changed: not glibc, or the operator set the allocator up
    through the environment."""
    if any(name in os.environ for name in OPERATOR_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    return all(mallopt(*setting) for setting in _settings())


def _settings() -> list[tuple[int, int]]:
    settings = [(M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
    if "MALLOC_ARENA_MAX" not in os.environ:
        settings.append((M_ARENA_MAX, ARENAS))
    return settings


def trim() -> bool:
    """Hand every arena's whole free pages back to the kernel; True when the C library released any. Blocks
    for tens of milliseconds (hundreds on a busy machine): call it off the event loop (``trim_later``)."""
    if _MALLOC_TRIM is None:
        return False
    started = time.perf_counter()
    released = _MALLOC_TRIM(ctypes.c_size_t(0)) == 1  # keep no padding at the top of the main heap
    HEAP_TRIM_SECONDS.observe(time.perf_counter() - started)
    return released


_later_guard = threading.Lock()
_later: threading.Timer | None = None


def trim_later(delay_s: float = SETTLE_S, *, idle: Callable[[], bool] = lambda: True) -> None:
    """``trim`` in a thread of its own, ``delay_s`` after the last call, if ``idle()`` then says no session runs:
    each call puts it off again, so sessions ending together cost one walk of the arenas, and the next sessions
    one fault-in of the pages they touch.

    The garbage cycles the closed sessions left are collected first, so their memory is free when the arenas are
    walked. Both wait for an idle worker: a full collection holds the GIL, and a trim the arena's lock, for
    hundreds of milliseconds on a busy machine, too long while any session's media waits for them."""
    global _later
    with _later_guard:
        if _later is not None:
            _later.cancel()  # no use once it is trimming: that trim runs on, and this one after it
        _later = threading.Timer(delay_s, _collect_and_trim, args=(idle,))
        _later.daemon = True  # never holds the process up at exit
        _later.start()


def _collect_and_trim(idle: Callable[[], bool]) -> None:
    if not idle():
        return  # a session started meanwhile: the memory is in use again
    gc.collect()
    trim()
