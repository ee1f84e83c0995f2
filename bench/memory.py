"""Memory of a worker as sessions come and go: RSS per extra speaking session, and RSS after many sessions have
ended, against the warm idle level; and whether any session object outlives its session.

This process is the server (``LiveSession``s with Piper, the default lip-sync,
25 fps, a 16-frame moving avatar); each round's clients run in a child process
(``bench.remote_clients``), so their decoders do not count here. A round opens
``--batch`` sessions, lets them all speak for ``--speak`` seconds, then closes
them; rounds repeat until ``--sessions`` sessions have come and gone.

    python -m bench.memory [--sessions 100] [--batch 5] [--speak 2]

Run it under different allocator settings to compare, e.g. ``MALLOC_MMAP_THRESHOLD_=131072`` (glibc's
threshold pinned: frame-sized blocks stay on mmap and go back when freed), ``MALLOC_ARENA_MAX=2`` or
``LD_PRELOAD=libjemalloc.so.2``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

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


async def main(args: argparse.Namespace) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    django.setup()
    from bench.talking import loopback_bench_config
    from testkit.bundles import write_astronaut_bundle

    print(
        f"allocator: MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '-')}, "
        f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '-')}, "
        f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '-')}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_astronaut_bundle(Path(tmp) / "avatar", frame_count=16)
        config = loopback_bench_config(bundle)
        pool = model_pool(device="cpu")
        await pool.warm(
            tts_engine=config.tts_engine, voice=config.voice, lipsync_engine=config.lipsync_engine, avatar_path=bundle
        )
        await one_round(pool, config, 1, args.speak)  # warm: first Piper run, codecs, thread pools
        idle, idle_census, idle_maps = rss_mb(), census(), where_rss_is()
        one = await one_round(pool, config, 1, args.speak)
        many = await one_round(pool, config, args.batch, args.speak)
        print(
            f"warm idle RSS {idle:.0f} MB; 1 session speaking {one:.0f} MB; {args.batch} speaking {many:.0f} MB: "
            f"{(many - one) / (args.batch - 1):.1f} MB per extra speaking session (goal ≤ 60)"
        )
        done, peak = 1 + args.batch, many
        while done < args.sessions:
            peak = max(peak, await one_round(pool, config, args.batch, args.speak))
            done += args.batch
        await asyncio.sleep(1.0)
        after = rss_mb()
        grown = census() - idle_census
        print(
            f"after {done} sessions came and went: RSS {after:.0f} MB idle, {after - idle:+.0f} MB against warm idle "
            f"(goal ≤ 50), peak {peak:.0f} MB; "
            f"LiveSession objects alive: {grown.get('realtime.session.LiveSession', 0)}"
        )
        print(f"RSS at warm idle: {idle_maps}\nRSS after: {where_rss_is()}")
        survivors = ", ".join(f"{name} +{count}" for name, count in grown.most_common(8))
        print(f"objects that outlived their sessions: {survivors}")
        await pool.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--speak", type=float, default=2.0)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
