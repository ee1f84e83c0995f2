"""Preload at start: the first session of a freshly started worker process, cold vs preloaded and warmed up.

Each variant runs in its own new Python process, as a restarted worker would: "cold" opens the first session
straight away (the pool loads the voice, the lip-sync model and the avatar on demand, and Piper's first
synthesis pays its first-call cost inside the first answer); "preloaded" first does what PRELOAD_AT_START does
before daphne listens (``ModelPool.warm`` + ``ModelPool.warm_up``), and only then opens the session. Measured at
an aiortc client over loopback WebRTC:

- open → first video frame: session open (engine lease) + offer/answer + first frame received;
- say → first voiced audio: the first answer's TTS, lip-sync and transport.

    python -m bench.preload [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.defaults import model_pool

VOICED_RMS = 500


async def first_session(preload: bool) -> dict[str, float]:

    from bench.talking import loopback_bench_config
    from realtime.session import LiveSession
    from testkit.bundles import write_astronaut_bundle
    from testkit.peers import ReceivingPeer, rms
    from testkit.voice import RecordingEvents

    bundle = write_astronaut_bundle(Path(tempfile.mkdtemp()) / "astronaut", frame_count=1)
    config = loopback_bench_config(bundle)
    pool = model_pool(device="cpu")
    result: dict[str, float] = {}
    if preload:
        started = time.perf_counter()
        keys = await pool.warm(
            tts_engine=config.tts_engine,
            voice=config.voice,
            lipsync_engine=config.lipsync_engine,
            avatar_path=config.avatar_path,
        )
        await pool.warm_up(keys)
        result["preload_s"] = time.perf_counter() - started

    started = time.perf_counter()
    live = await LiveSession.open(config, pool, RecordingEvents())
    client = ReceivingPeer()
    await client.accept(await live.accept_offer(await client.offer()))
    while not client.video:
        await asyncio.sleep(0.005)
    result["open_to_first_frame_ms"] = (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    await live.say("Hello, and welcome to the show.", 1)
    while not any(rms(frame.data) > VOICED_RMS for frame in client.audio[-5:]):
        await asyncio.sleep(0.005)
    result["say_to_first_voice_ms"] = (time.perf_counter() - started) * 1000
    await client.close()
    await live.close()
    await pool.aclose()
    return result


def child(preload: bool) -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    import django

    django.setup()  # the test fixtures used to write the bundle import Django models
    print(json.dumps(asyncio.run(first_session(preload))))


def run_variant(preload: bool) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.preload", "--child", "preloaded" if preload else "cold"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=["cold", "preloaded"])
    args = parser.parse_args()
    if args.child:
        child(args.child == "preloaded")
        return
    results: dict[str, list[dict[str, float]]] = {"cold": [], "preloaded": []}
    for _ in range(args.runs):  # alternated, so load from other processes hits both alike
        for variant in results:
            results[variant].append(run_variant(variant == "preloaded"))
    print(f"First session of a new worker process, median of {args.runs} runs each (machine shared, 2 cores):")
    for metric in ("open_to_first_frame_ms", "say_to_first_voice_ms"):
        cold = statistics.median(run[metric] for run in results["cold"])
        warm = statistics.median(run[metric] for run in results["preloaded"])
        print(f"  {metric}: cold {cold:.0f} ms, preloaded {warm:.0f} ms, ratio {cold / warm:.1f}x")
    preload = statistics.median(run["preload_s"] for run in results["preloaded"])
    print(f"  preloading + warm-up before the worker listens: {preload:.1f} s")


if __name__ == "__main__":
    main()
