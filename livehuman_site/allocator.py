"""glibc's malloc, set for a worker whose sessions come and go: memory goes back when a session ends.

glibc serves blocks from 128 KiB up with their own ``mmap``, and gives them
back on ``free``; but each such free raises that threshold to the freed
block's size (up to 32 MiB). A worker frees video frames (0.8 MB at 512 px)
and speech buffers all the time, so soon every frame-sized block comes from the
heap arenas instead, where a few long-lived small objects pin the freed space:
RSS then keeps every peak (measured with ``python -m bench.memory``: +400 MB
after 26 sessions had come and gone, with no session object left alive).
Fixing the threshold at its default keeps large blocks on ``mmap``, so they
return to the system when freed (+14 MB after the same run).

``MALLOC_MMAP_THRESHOLD_`` in the environment (glibc's own variable) wins;
``LIVEHUMAN_MALLOC_TUNING=0`` leaves malloc as it is. Other C libraries (musl,
macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default starting value, now fixed: setting it stops the dynamic rise


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold for this process; whether it was set."""
    if os.environ.get("LIVEHUMAN_MALLOC_TUNING", "1") == "0" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
