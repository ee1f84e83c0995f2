"""The worker's allocator keeps freed batch-sized memory for the next batch, unless the operator set it up.

Each case runs in a fresh interpreter: what glibc's thresholds are in this test process depends on every test
that ran before it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")

# Allocates and frees a 16 MB block (two batches of frames), then prints whether glibc served it from mapped
# pages (handed back to the kernel when freed) and how much freed heap it kept.
PROBE = """
import ctypes, sys
import numpy as np
from realtime.allocator import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
changed = keep_freed_memory() if sys.argv[1] == "keep" else False
mapped = libc.mallinfo2().hblkhd
block = np.ones(16 << 20, np.uint8)
mapped = libc.mallinfo2().hblkhd - mapped
del block
print(changed, mapped, libc.mallinfo2().fordblks)
"""


def probe(mode: str, **env: str) -> tuple[bool, int, int]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env | {"PYTHONPATH": root}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=environment, check=True, cwd=root
    )
    changed, mapped, free = result.stdout.split()
    return changed == "True", int(mapped), int(free)


def test_a_batch_sized_block_is_kept_for_reuse_once_set():
    changed, mapped, free = probe("keep")
    assert changed
    assert mapped == 0, "served from the heap, not from pages mapped for it alone"
    assert free >= 16 << 20, "kept when freed, not handed back to the kernel"


def test_without_it_a_fresh_process_hands_such_a_block_back():
    changed, mapped, free = probe("plain")
    assert not changed
    assert mapped >= 16 << 20 and free < 16 << 20


def test_the_operators_own_setting_wins():
    changed, mapped, _ = probe("keep", MALLOC_MMAP_THRESHOLD_="131072")
    assert not changed
    assert mapped >= 16 << 20
