"""The worker's allocator keeps freed batch-sized memory for the next batch, unless the operator set it up, and
gives the free pages back to the operating system after a session ends.

Each case runs in a fresh interpreter: what glibc's thresholds are in this test process depends on every test
that ran before it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from realtime import allocator
from realtime.engines.tts.base import VoiceSettings
from realtime.session import LiveSession
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import model_pool, session_config
from testkit.voice import RecordingEvents
from testkit.waits import until
from tests.fixtures.fake_engines import BlockTTS, LevelLipSync

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


def fresh_python(code: str, *args: str, **env: str) -> str:
    """What ``code`` prints, run by a fresh interpreter with no allocator settings but ``env``'s."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=environment | env | {"PYTHONPATH": root},
        check=True,
        cwd=root,
    )
    return result.stdout


def probe(mode: str, **env: str) -> tuple[bool, int, int]:
    changed, mapped, free = fresh_python(PROBE, mode, **env).split()
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


# Starts 4 threads that each allocate and keep a 1 MB block, then prints how many arenas glibc has
# (``malloc_info``'s <heap> elements).
ARENAS_PROBE = """
import ctypes, os, sys, tempfile, threading
import numpy as np
from realtime.allocator import keep_freed_memory

changed = keep_freed_memory() if sys.argv[1] == "keep" else False
kept = []
threads = [threading.Thread(target=lambda: kept.append(np.ones(1 << 20, np.uint8))) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as report:
    stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(changed, open(report.name).read().count("<heap nr="))
"""


def arenas(mode: str, **env: str) -> tuple[bool, int]:
    changed, count = fresh_python(ARENAS_PROBE, mode, **env).split()
    return changed == "True", int(count)


def test_threads_started_after_it_share_one_arena():
    assert arenas("keep") == (True, 1)
    assert arenas("plain")[1] > 1, "without it, glibc gives threads arenas of their own"


def test_the_operators_own_arena_count_wins():
    assert arenas("keep", MALLOC_ARENA_MAX="4")[1] > 1


# Run in a fresh process, so no other test's allocations and no allocator setting blur its RSS. Several
# threads (each gets its own malloc arena) allocate 1 MB arrays and keep every other one: the freed ones are holes
# between live blocks, which free() can never shrink the heap past. A 4 MB block freed first raises glibc's mmap
# threshold above 1 MB, as a worker's first video frames do, so the 1 MB blocks come from the arenas.
FREE_IN_THREADS = """
import json, os, threading
import numpy as np
from realtime import allocator

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def allocate(kept):
    arrays = [np.ones(1 << 20, np.uint8) for _ in range(ARRAYS)]
    kept.extend(arrays[::2])

np.ones(4 << 20, np.uint8)
kept = []
threads = [threading.Thread(target=allocate, args=(kept,)) for _ in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
before = rss()
released = allocator.trim()
print(json.dumps({"before": before, "after": rss(), "released": released, "kept": len(kept)}))
"""
THREADS, ARRAYS = 4, 64
FREED_BYTES = THREADS * ARRAYS // 2 * 2**20  # 128 MB freed, as many still alive


def test_trim_gives_the_pages_of_freed_blocks_back():
    code = FREE_IN_THREADS.replace("THREADS", str(THREADS)).replace("ARRAYS", str(ARRAYS))
    rss = json.loads(fresh_python(code).splitlines()[-1])
    assert rss["released"] and rss["kept"] == THREADS * ARRAYS // 2
    # Most of what was freed leaves RSS: each 1 MB hole is 255 or 256 whole pages; half of it is a safe floor.
    assert rss["before"] - rss["after"] >= FREED_BYTES // 2, rss


def trims() -> float:
    return REGISTRY.get_sample_value("livehuman_heap_trim_seconds_count") or 0.0


async def test_a_session_that_ends_has_the_heap_trimmed(tmp_path):
    """A real session speaks, its frames are rendered, it closes: a moment after its lease went back the heap
    was trimmed (counted by the trim itself, in the process's metrics registry)."""
    lipsync = LevelLipSync()
    pool = model_pool(
        device="cpu",
        resolve=lambda kind, name: (lambda first: lipsync) if kind == "lipsync" else (lambda first: BlockTTS()),
    )
    bundle = write_astronaut_bundle(tmp_path / "astronaut")
    config = session_config(
        session_id="s",
        role_id=1,
        role_name="r",
        fps=25,
        avatar_path=bundle,
        lipsync_engine="default",
        tts_engine="piper",
        voice=VoiceSettings(),
    )
    live = await LiveSession.open(config, pool, RecordingEvents())
    await live.say("Somebody is talking.", 1)
    await until(lambda: lipsync.batches, what="the first frames rendered")
    before = trims()
    await live.close()
    await live.close()  # idempotent: the lease goes back once
    assert pool.active_leases == 0
    await until(lambda: trims() > before, timeout_s=allocator.SETTLE_S + 10, what="the heap trimmed after the session")
    await pool.aclose()


def test_a_worker_with_a_session_left_running_is_not_trimmed():
    """A trim holds the arena's lock for as long as it walks the heap: while any session runs, the delayed trim
    gives up instead of stalling that session's media (the timer thread is joined: no waiting on the clock)."""
    before = trims()
    allocator.trim_later(0, idle=lambda: False)
    allocator._later.join()
    assert trims() == before
    allocator.trim_later(0, idle=lambda: True)
    allocator._later.join()
    assert trims() == before + 1
