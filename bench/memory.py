"""Memory of a worker as sessions come and go: RSS per extra speaking session, and RSS after many sessions have
ended, against the warm idle level; whether any session object outlives its session; and the server's CPU per
session, so an allocator setting's memory is weighed against what it costs.

This process is the server (``LiveSession``s with Piper, the default lip-sync,
25 fps, a 16-frame moving avatar); each round's clients run in a child process
(``bench.remote_clients``), so their decoders do not count here. A round opens
``--batch`` sessions, lets them all speak for ``--speak`` seconds, then closes
them; rounds repeat until ``--sessions`` sessions have come and gone.

    python -m bench.memory [--sessions 100] [--batch 5] [--speak 2] [--no-trim] [--compare]

By default the pool trims the C heap a moment after each session ends (``realtime.allocator``); ``--no-trim``
measures without. ``--compare`` runs the bench once per allocator setting, one after the other in child
processes of this run, and prints their numbers side by side with CPU per session as a ratio to the default's:
the trim (alone, and with two malloc arenas: ``MALLOC_ARENA_MAX=2``), no trim, glibc's mmap threshold
pinned (``MALLOC_MMAP_THRESHOLD_=131072``: frame-sized blocks stay on mmap), ``MALLOC_ARENA_MAX=2`` and
jemalloc (``LD_PRELOAD``, when ``libjemalloc.so.2`` is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes.util
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
from prometheus_client import REGISTRY

from bench.remote_clients import sessions_with_remote_clients
from testkit.defaults import model_pool


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def census() -> Counter[str]:
    """Objects tracked by the garbage collector, by type name."""
    gc.collect()
    return Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects())


def where_rss_is() -> str:
    """Resident memory by kind of mapping: the main heap, anonymous mappings (thread arenas, large blocks,
    native libraries' pools), and files (libraries, memory-mapped avatars)."""
    kinds: Counter[str] = Counter()
    big = 0
    for mapping in psutil.Process().memory_maps(grouped=False):
        path = mapping.path
        kind = "heap" if path == "[heap]" else "anonymous" if not path or path.startswith("[anon") else "files"
        if path.startswith("[") and kind != "heap" and kind != "anonymous":
            kind = "other"
        kinds[kind] += mapping.rss
        big += kind == "anonymous" and mapping.rss > 32 * 2**20
    parts = ", ".join(f"{kind} {rss / 2**20:.0f} MB" for kind, rss in kinds.most_common())
    return f"{parts} ({big} anonymous mappings over 32 MB resident)"


async def one_round(pool, config, sessions: int, speak_s: float) -> float:
    """Open ``sessions`` speaking sessions with clients in a child process; RSS while they speak; close them."""
    from bench.talking import PARAGRAPH

    async with sessions_with_remote_clients(config, pool, sessions) as clients:
        for n, live in enumerate(clients.lives):
            await live.say(PARAGRAPH, n + 1)
        await asyncio.sleep(speak_s)  # a benchmark's measuring time, not a test's wait
        speaking = rss_mb()
        now = time.time()
        await clients.video_fps((now - 1, now))  # the clients report and hang up
    return speaking


async def main(args: argparse.Namespace) -> dict[str, float]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    django.setup()
    from bench.talking import loopback_bench_config
    from realtime import allocator
    from testkit.bundles import write_astronaut_bundle

    print(
        f"allocator: MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '-')}, "
        f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '-')}, "
        f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '-')}, heap trimmed after sessions: {not args.no_trim}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_astronaut_bundle(Path(tmp) / "avatar", frame_count=16)
        config = loopback_bench_config(bundle)
        pool = model_pool(device="cpu", trim_heap=not args.no_trim)
        await pool.warm(
            tts_engine=config.tts_engine, voice=config.voice, lipsync_engine=config.lipsync_engine, avatar_path=bundle
        )
        await one_round(pool, config, 1, args.speak)  # warm: first Piper run, codecs, thread pools
        await asyncio.sleep(allocator.SETTLE_S + 1)  # its trim, if any: idle is idle after it
        idle, idle_census, idle_maps = rss_mb(), census(), where_rss_is()
        cpu_before, trims_before = cpu_s(), trim_stats()
        one = await one_round(pool, config, 1, args.speak)
        many = await one_round(pool, config, args.batch, args.speak)
        per_extra = (many - one) / (args.batch - 1)
        print(
            f"warm idle RSS {idle:.0f} MB; 1 session speaking {one:.0f} MB; {args.batch} speaking {many:.0f} MB: "
            f"{per_extra:.1f} MB per extra speaking session (goal ≤ 60)"
        )
        done, peak = 1 + args.batch, many
        while done < args.sessions:
            peak = max(peak, await one_round(pool, config, args.batch, args.speak))
            done += args.batch
        await asyncio.sleep(allocator.SETTLE_S + 1)  # the last round's trims
        cpu_per_session = (cpu_s() - cpu_before) / done
        trims, trim_seconds = (now - before for now, before in zip(trim_stats(), trims_before, strict=True))
        after = rss_mb()
        grown = census() - idle_census
        print(
            f"after {done} sessions came and went: RSS {after:.0f} MB idle, {after - idle:+.0f} MB against warm idle "
            f"(goal ≤ 50), peak {peak:.0f} MB; "
            f"LiveSession objects alive: {grown.get('realtime.session.LiveSession', 0)}"
        )
        print(
            f"server CPU per session (opened, spoke {args.speak:g} s, closed): {cpu_per_session:.2f} s; "
            f"heap trims: {trims:.0f}, {1000 * trim_seconds / max(trims, 1):.1f} ms each on average"
        )
        allocator.trim()
        print(f"one more trim now: RSS {rss_mb():.0f} MB (what trims at session end left resident)")
        print(f"RSS at warm idle: {idle_maps}\nRSS after: {where_rss_is()}")
        survivors = ", ".join(f"{name} +{count}" for name, count in grown.most_common(8))
        print(f"objects that outlived their sessions: {survivors}")
        await pool.aclose()
    return {"per_extra_mb": per_extra, "after_mb": after - idle, "peak_mb": peak, "cpu_s": cpu_per_session}


def cpu_s() -> float:
    """This process's CPU seconds, all threads, user and system (page faults and trims count in system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def trim_stats() -> tuple[float, float]:
    """Heap trims so far in this process, and the seconds they took (``livehuman_heap_trim_seconds``)."""
    count = REGISTRY.get_sample_value("livehuman_heap_trim_seconds_count") or 0.0
    return count, REGISTRY.get_sample_value("livehuman_heap_trim_seconds_sum") or 0.0


RESULT = "result: "  # the line a --compare child reports its numbers on


def compare(args: argparse.Namespace) -> None:
    """The bench under each allocator setting, one child process after the other, and their numbers side by side."""
    variants = [
        ("trim after sessions (default)", {}, []),
        ("no trim", {}, ["--no-trim"]),
        ("trim + MALLOC_ARENA_MAX=2", {"MALLOC_ARENA_MAX": "2"}, []),
        ("MALLOC_MMAP_THRESHOLD_=131072", {"MALLOC_MMAP_THRESHOLD_": "131072"}, ["--no-trim"]),
        ("MALLOC_ARENA_MAX=2", {"MALLOC_ARENA_MAX": "2"}, ["--no-trim"]),
    ]
    jemalloc = ctypes.util.find_library("jemalloc")
    if jemalloc:
        variants.append(("jemalloc", {"LD_PRELOAD": jemalloc}, ["--no-trim"]))
    else:
        print("jemalloc: libjemalloc.so.2 not installed, not compared")
    shared = ["--sessions", str(args.sessions), "--batch", str(args.batch), "--speak", str(args.speak)]
    results: list[tuple[str, dict[str, float]]] = []
    for name, env, flags in variants:
        print(f"--- {name}", flush=True)
        child = subprocess.run(
            [sys.executable, "-m", "bench.memory", *shared, *flags],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        if child.returncode:
            print(f"failed ({child.returncode}):\n{child.stderr[-4000:]}")
            continue
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith(RESULT)), flush=True)
        results.append((name, json.loads(next(line for line in lines if line.startswith(RESULT))[len(RESULT) :])))
    base_cpu = results[0][1]["cpu_s"]
    print(f"\n{'':36} {'MB/extra session':>17} {'after − idle MB':>16} {'CPU s/session':>14} {'CPU ratio':>10}")
    for name, result in results:
        print(
            f"{name:36} {result['per_extra_mb']:17.1f} {result['after_mb']:+16.0f} {result['cpu_s']:14.2f} "
            f"{result['cpu_s'] / base_cpu:10.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--speak", type=float, default=2.0)
    parser.add_argument("--no-trim", action="store_true", help="leave the C heap untrimmed when sessions end")
    parser.add_argument("--compare", action="store_true", help="run once per allocator setting, side by side")
    logging.basicConfig(level=logging.ERROR)
    arguments = parser.parse_args()
    if arguments.compare:
        compare(arguments)
    else:
        print(RESULT + json.dumps(asyncio.run(main(arguments))))
