"""Degradation benchmark: a worker overloaded on purpose keeps every session real-time by stepping down its
degradation ladder, and climbs back up when the load is removed (issue 14, point 6).

1. Overload: ``--sessions`` sessions of one role (Piper voice, ``--fps`` 50 by default, the ``--engine`` lip-sync:
   the weights-free default, or Wav2Lip with random weights, which on a CPU is far from real time), each with a
   loopback aiortc client in this process, all speaking without pause — more than the worker can hold at full
   quality. Every second, each session's level on its ladder and the video fps its client received over that
   second, against the fps of its level.
2. Load removed: all but ``--keep`` sessions end; the rest go on speaking and climb back.

The client's fps alone flatters a late session (the video track fills a late frame's slot with an idle picture),
so a session is *real-time* in a second when no frame of it was late — no gap inside a sentence at the player, no
slot the video track had to skip — and its client received at least 90 % of its level's fps. The summary gives,
per phase, the share of real-time seconds once the ladder has settled (after the first ``--settle-s`` seconds),
the lowest level reached and the level at the end.

    python -m bench.degrade [--sessions 3] [--keep 1] [--fps 50] [--engine default|wav2lip]
                            [--overload-s 40] [--recover-s 40] [--settle-s 15]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from bench.pool import PARAGRAPH, CountingPeer, until
from realtime.engines.tts.base import VoiceSettings
from realtime.pool import ModelPool
from realtime.session import LiveSession
from testkit.bundles import write_astronaut_bundle, write_random_wav2lip_checkpoint
from testkit.defaults import model_pool, session_config
from testkit.voice import RecordingEvents

REAL_TIME = 0.9  # share of the level's fps a client must receive in a second


@dataclass
class Talker:
    """One session, its client and the per-second record: (level, level fps, received fps, late frames)."""

    live: LiveSession
    peer: CountingPeer
    seconds: list[tuple[int, int, float, int]] = field(default_factory=list)
    speaking: asyncio.Task | None = None
    late: int = 0  # frames late so far, as the player and the video track reported them to the governor

    def __post_init__(self) -> None:
        for owner, hook in ((self.live.pipeline.player, "on_late"), (self.live.video_track, "on_skipped")):
            report = getattr(owner, hook)
            setattr(owner, hook, lambda frames, fps, report=report: (self._count(frames), report(frames, fps)))

    def _count(self, frames: int) -> None:
        self.late += frames

    def label(self) -> str:
        level = self.live.governor.level
        marks = ("h" if level.half_size else "") + ("e" if level.lipsync_engine else "")
        return f"L{self.live.governor.index}:{level.fps}{marks}"

    async def talk(self, first_id: int) -> None:
        """Speak without pause: a new paragraph whenever the last one has played."""
        message_id = first_id
        while True:
            if not self.live.busy():
                await self.live.say(PARAGRAPH, message_id)
                message_id += 1
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self.speaking is not None:
            self.speaking.cancel()
            with suppress(asyncio.CancelledError):
                await self.speaking
        await self.peer.close()
        await self.live.close()


async def watch(talkers: list[Talker], seconds: float, phase: str) -> None:
    """Print one row a second: each session's level, received/level fps and late frames."""
    loop = asyncio.get_running_loop()
    print(f"\n{phase}: {len(talkers)} sessions; each: level:fps [h: half size, e: lighter engine], received/level fps,")
    print("  late frames")
    started = loop.time()
    while loop.time() - started < seconds:
        second_start = loop.time()
        before = [(talker.live.governor.level.fps, talker.late) for talker in talkers]
        await asyncio.sleep(1.0)
        now = loop.time()
        cells = []
        for talker, (fps_before, late_before) in zip(talkers, before, strict=True):
            received = talker.peer.fps_since(second_start, now)
            level_fps = talker.live.governor.level.fps
            late = talker.late - late_before
            # a level's fps takes effect behind the frames already made at the old one: judge by the lower
            talker.seconds.append((talker.live.governor.index, min(fps_before, level_fps), received, late))
            cells.append(f"{talker.label():>9} {received:4.1f}/{level_fps:<2} {late:>3}")
        print(f"  {now - started:5.1f} s  " + "  ".join(cells))


def summary(talkers: list[Talker], settle_s: float, phase: str) -> None:
    print(f"\n{phase} summary (after the first {settle_s:g} s):")
    for n, talker in enumerate(talkers):
        settled = talker.seconds[int(settle_s) :]
        on_time = sum(received >= REAL_TIME * fps and not late for _, fps, received, late in settled)
        lowest = max(level for level, *_ in talker.seconds)
        final = talker.seconds[-1][0]
        share = on_time / len(settled) if settled else 0.0
        print(
            f"  session {n}: real-time {on_time}/{len(settled)} s ({share:.0%}), lowest level {lowest}, "
            f"level at the end {final} of {len(talker.live.governor.levels) - 1}"
        )
        talker.seconds.clear()


async def start(pool: ModelPool, args: argparse.Namespace, bundle: Path, n: int) -> Talker:
    config = session_config(
        session_id=f"degrade-{n}",
        role_id=1,
        role_name="overloaded",
        fps=args.fps,
        avatar_path=bundle,
        lipsync_engine=args.engine,
        tts_engine="piper",
        voice=VoiceSettings(),
    )
    live = await LiveSession.open(config, pool, RecordingEvents())
    peer = CountingPeer()
    await peer.connect(live)
    await until(lambda: len(peer.video_at) > 5, 60)
    return Talker(live, peer)


async def main(args: argparse.Namespace) -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        bundle = write_astronaut_bundle(Path(folder) / "astronaut", frame_count=16)
        options = {}
        if args.engine == "wav2lip":
            checkpoint = write_random_wav2lip_checkpoint(Path(folder) / "wav2lip.pth")
            options = {"lipsync": {"wav2lip": {"checkpoint": str(checkpoint)}}}
        pool = model_pool(engine_options=options)
        talkers = [await start(pool, args, bundle, n) for n in range(args.sessions)]
        try:
            for n, talker in enumerate(talkers):
                talker.speaking = asyncio.ensure_future(talker.talk(1000 * (n + 1)))
            await watch(talkers, args.overload_s, f"1. overload ({args.engine} engine, role at {args.fps} fps)")
            summary(talkers, args.settle_s, "1. overload")
            for talker in talkers[args.keep :]:
                await talker.close()
            talkers = talkers[: args.keep]
            await watch(talkers, args.recover_s, "2. load removed")
            summary(talkers, args.settle_s, "2. load removed")
        finally:
            for talker in talkers:
                await talker.close()
            await pool.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--keep", type=int, default=1)
    parser.add_argument("--fps", type=int, default=50)
    parser.add_argument("--engine", choices=("default", "wav2lip"), default="default")
    parser.add_argument("--overload-s", type=float, default=40)
    parser.add_argument("--recover-s", type=float, default=40)
    parser.add_argument("--settle-s", type=float, default=15)
    asyncio.run(main(parser.parse_args()))
