"""Model pool benchmark: cross-session batching, memory per session, role switch time, sessions per worker.

1. Lip-sync throughput: N sessions (1, 2, 4, 8) of one role each render their
   frames one at a time, as they fall due (a real-time session has about one
   frame ready when the system keeps up), through the pool's batching executor.
   Aggregate frames/s with cross-session batching (batch 8, wait 8 ms) against
   without (batch 1: one model call per frame), for the default engine on a
   photo (the photo mouth: the astronaut bundle has no atlas) and on a video
   (the atlas: opencv-doc's Megamind clip built as an upload is), the earlier
   mouth warp and Wav2Lip (random weights; same speed as real ones). Goal: ≥ 2×
   at 8 for every engine that batches. Frames
   per CPU second (this process, all threads) are printed beside frames per
   second: on a shared machine the wall clock swings with the other load.
2. Memory: process RSS added by each extra session of a role already loaded
   (Piper voice, default engine, 16-frame 512×512 avatar), speaking. Once with
   no peer connection, once with a loopback WebRTC client per session; the
   client's decoder lives in this process too, so that figure is an upper bound.
   Goal: ≤ 150 MB.
3. Role switch: ``LiveSession.switch_role`` between two preloaded roles (other
   avatar, other voice, other fps), half of them mid-sentence. Goal: ≤ 100 ms.
4. Capacity: N sessions (Piper + default engine, 25 fps), each with a loopback
   WebRTC client, all speaking at once; a session holds its fps when it never
   degraded and its client received ≥ 90 % of 25 frames a second. The largest
   N where every session held is this machine's number (server and clients share
   the same cores, so it is a lower bound for the server alone).

    python -m bench.pool [--seconds 3] [--wav2lip-seconds 4] [--sessions 1,2,4,8] [--max-sessions 12]
                         [--skip-wav2lip] [--skip-atlas] [--skip-capacity] [--throughput-only]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.lipsync_engines import make_requests
from bench.talking import PARAGRAPH, InstantTTS
from realtime.config import SessionConfig
from realtime.engines.tts.base import VoiceSettings
from realtime.ledger import MessageTimings
from realtime.pool import ModelPool
from realtime.session import LiveSession
from testkit.bundles import write_astronaut_bundle, write_random_wav2lip_checkpoint
from testkit.defaults import model_pool, session_config

FPS = 25
BATCH, WAIT_MS = 8, 8.0  # the LIPSYNC_BATCH_SIZE and LIPSYNC_BATCH_WAIT_MS defaults


# --- 1. throughput with and without cross-session batching --------------------------------------------------


@dataclass
class Throughput:
    """What ``sessions`` got together from a pool: frames per wall second and per CPU second, the mean batch."""

    fps: float
    cpu_fps: float
    mean_batch: float


async def aggregate_fps(pool: ModelPool, bundle_path: Path, sessions: int, seconds: float) -> Throughput:
    """What all ``sessions`` together got from ``pool``, each rendering one frame per call."""
    leases = [
        await pool.lease(tts_engine="none", voice=VoiceSettings(), lipsync_engine="bench", avatar_path=bundle_path)
        for _ in range(sessions)
    ]
    requests = make_requests(leases[0].avatar, 64)
    await leases[0].render(requests[:2])  # warm-up: kernels, page faults
    loop = asyncio.get_running_loop()
    counts = [0] * sessions
    stop_at = loop.time() + seconds

    async def session(index: int) -> None:
        lease, n = leases[index], index * 7
        while loop.time() < stop_at:
            await lease.render([requests[n % len(requests)]])
            counts[index] += 1
            n += 1

    batches_before, items_before = leases[0].batcher.stats.batches, leases[0].batcher.stats.items
    started, cpu_started = loop.time(), time.process_time()
    await asyncio.gather(*(session(i) for i in range(sessions)))
    elapsed, cpu = loop.time() - started, time.process_time() - cpu_started
    stats = leases[0].batcher.stats
    mean_batch = (stats.items - items_before) / max(1, stats.batches - batches_before)
    for lease in leases:
        lease.release()
    return Throughput(sum(counts) / elapsed, sum(counts) / cpu, mean_batch)


async def throughput(name: str, make_engine: Any, bundle_path: Path, counts: list[int], seconds: float) -> None:
    print(
        f"\n1. {name}: aggregate lip-sync frames/s, each session rendering one frame per call ({seconds:g} s a point)"
    )
    print(
        f"{'sessions':>8} {'no batching':>12} {'batched':>9} {'ratio':>6} {'mean batch':>11} {'25 fps sessions':>16}"
        f"   per CPU second: {'no batching':>12} {'batched':>9} {'ratio':>6}"
    )

    def resolve(kind: str, engine: str) -> Any:
        return make_engine if kind == "lipsync" else (lambda voice: InstantTTS(np.zeros(1, np.int16)))

    for sessions in counts:
        single = model_pool(device="cpu", resolve=resolve, batch_size=1, batch_wait_ms=0)
        batched = model_pool(device="cpu", resolve=resolve, batch_size=BATCH, batch_wait_ms=WAIT_MS)
        plain = await aggregate_fps(single, bundle_path, sessions, seconds)
        shared = await aggregate_fps(batched, bundle_path, sessions, seconds)
        await single.aclose()
        await batched.aclose()
        print(
            f"{sessions:>8} {plain.fps:>12.1f} {shared.fps:>9.1f} {shared.fps / plain.fps:>6.2f} "
            f"{shared.mean_batch:>11.1f} {shared.fps / FPS:>16.1f}"
            f"                   {plain.cpu_fps:>12.1f} {shared.cpu_fps:>9.1f} {shared.cpu_fps / plain.cpu_fps:>6.2f}"
        )


# --- live sessions: events, a counting client ---------------------------------------------------------------


class QuietEvents:
    """SessionEvents that keep only what the benchmark reads."""

    def __init__(self) -> None:
        self.finished: set[int] = set()

    async def state_changed(self, state: str) -> None: ...

    async def subtitle(self, text: str, message_id: int) -> None: ...

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None:
        self.finished.add(message_id)

    async def error(self, code: str, message: str) -> None:
        print(f"   session error {code}: {message}")

    async def ended(self, reason: str) -> None:
        print(f"   session ended: {reason}")


@dataclass
class CountingPeer:
    """A client peer connection that decodes what arrives and counts the video frames, keeping no pixels."""

    peer: RTCPeerConnection = field(default_factory=lambda: RTCPeerConnection(RTCConfiguration(iceServers=[])))
    video_at: list[float] = field(default_factory=list)
    _readers: list[asyncio.Task] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.peer.on("track", lambda track: self._readers.append(asyncio.ensure_future(self._read(track))))
        self.peer.addTransceiver("audio", direction="recvonly")
        self.peer.addTransceiver("video", direction="recvonly")

    async def connect(self, live: LiveSession) -> None:
        await self.peer.setLocalDescription(await self.peer.createOffer())
        answer = await live.accept_offer(self.peer.localDescription.sdp)
        await self.peer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def fps_since(self, since: float, until: float) -> float:
        return sum(since <= at < until for at in self.video_at) / (until - since)

    async def close(self) -> None:
        await self.peer.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def _read(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await track.recv()
                if track.kind == "video":
                    self.video_at.append(loop.time())
        except MediaStreamError:
            pass


def role_config(name: str, bundle: Path, *, fps: int = FPS, rate: float = 1.0) -> SessionConfig:
    return session_config(
        session_id=name,
        role_id=hash(name) % 1000,
        role_name=name,
        fps=fps,
        avatar_path=bundle,
        lipsync_engine="default",
        tts_engine="piper",
        voice=VoiceSettings(rate=rate),
    )


async def until(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


# --- 2. memory per session ------------------------------------------------------------------------------------


async def memory_per_session(pool: ModelPool, config: SessionConfig, sessions: int, with_peers: bool) -> None:
    lives: list[LiveSession] = []
    peers: list[CountingPeer] = []
    rss: list[float] = []
    for n in range(sessions):
        live = await LiveSession.open(config, pool, QuietEvents())
        lives.append(live)
        if with_peers:
            peer = CountingPeer()
            peers.append(peer)
            await peer.connect(live)
            await until(lambda p=peer: len(p.video_at) > 5, 15)
        await live.say(PARAGRAPH, n + 1)
        await asyncio.sleep(2.5)  # speaking: every queue and encoder buffer in use
        rss.append(rss_mb())
    per_session = (rss[-1] - rss[0]) / (sessions - 1)
    label = "with a loopback WebRTC client each" if with_peers else "no peer connection"
    print(f"   {label:36} RSS {rss[0]:.0f} → {rss[-1]:.0f} MB over {sessions} sessions: {per_session:.1f} MB per extra")
    for peer in peers:
        await peer.close()
    for live in lives:
        await live.close()


# --- 3. role switch -------------------------------------------------------------------------------------------


async def role_switch_ms(pool: ModelPool, first: SessionConfig, second: SessionConfig, switches: int) -> list[float]:
    for config in (first, second):
        await pool.warm(
            tts_engine=config.tts_engine,
            voice=config.voice,
            lipsync_engine=config.lipsync_engine,
            avatar_path=config.avatar_path,
        )
    live = await LiveSession.open(first, pool, QuietEvents())
    times = []
    for n in range(switches):
        if n % 2:
            await live.say(PARAGRAPH, 100 + n)
            await until(lambda: live.state.value == "speaking", 15)
        started = time.perf_counter()
        await live.switch_role(second if n % 2 == 0 else first)
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.1)
    await live.close()
    return times


# --- 4. capacity ----------------------------------------------------------------------------------------------


async def holds_fps(pool: ModelPool, config: SessionConfig, sessions: int, window_s: float) -> tuple[bool, str]:
    """Run ``sessions`` talking sessions; do they all keep 25 fps for ``window_s``? And a one-line summary."""
    lives = [await LiveSession.open(config, pool, QuietEvents()) for _ in range(sessions)]
    peers = [CountingPeer() for _ in range(sessions)]
    try:
        for live, peer in zip(lives, peers, strict=True):
            await peer.connect(live)
        await until(lambda: all(len(p.video_at) > 5 for p in peers), 30)
        for n, live in enumerate(lives):
            await live.say(PARAGRAPH * 2, n + 1)
        await until(lambda: all(live.state.value == "speaking" for live in lives), 30)
        loop = asyncio.get_running_loop()
        start = loop.time() + 1.0  # past the first sentence's start-up
        lowest = [live.rate.fps for live in lives]
        while loop.time() < start + window_s:
            await asyncio.sleep(0.2)
            lowest = [min(low, live.rate.fps) for low, live in zip(lowest, lives, strict=True)]
        received = [peer.fps_since(start, start + window_s) for peer in peers]
    finally:
        for peer in peers:
            await peer.close()
        for live in lives:
            await live.close()
    held = all(low == FPS for low in lowest) and min(received) >= 0.9 * FPS
    summary = (
        f"received fps min {min(received):.1f} / mean {statistics.mean(received):.1f}, "
        f"lowest server fps {min(lowest)}, degraded sessions {sum(low < FPS for low in lowest)}"
    )
    return held, summary


async def capacity(pool: ModelPool, config: SessionConfig, max_sessions: int, window_s: float) -> None:
    print(f"\n4. sessions that hold 25 fps (Piper + default engine, loopback clients in this process, {window_s:g} s)")
    largest, sessions = 0, 1
    while sessions <= max_sessions:
        held, summary = await holds_fps(pool, config, sessions, window_s)
        print(f"   {sessions:>2} sessions: {'held' if held else 'NOT held'} — {summary}")
        if not held:
            break
        largest = sessions
        sessions += 1 if sessions < 4 else 2
    print(f"   largest number of sessions that held their fps: {largest}")


async def main(args: argparse.Namespace) -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only (FACTS.md)
    counts = [int(n) for n in args.sessions.split(",")]
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other processes skew the numbers); "
        f"batch {BATCH}, wait {WAIT_MS:g} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        moving = write_astronaut_bundle(folder / "moving", frame_count=16)
        other = write_astronaut_bundle(folder / "other", frame_count=8)

        from realtime.engines.lipsync.default import DefaultLipSync
        from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync

        await throughput("default engine (photo mouth)", DefaultLipSync, moving, counts, args.seconds)
        await throughput("mouth warp (the earlier default)", MouthWarpLipSync, moving, counts, args.seconds)
        if not args.skip_atlas:
            from bench.face import ROOT, video_avatar

            video, _ = video_avatar(ROOT / "data" / "test-media" / "Megamind.avi", folder / "video")
            await throughput("default engine (atlas: a video avatar)", DefaultLipSync, video.path, counts, args.seconds)
        if not args.skip_wav2lip:
            from realtime.engines.lipsync.wav2lip import Wav2LipLipSync

            checkpoint = write_random_wav2lip_checkpoint(folder / "random.pth")
            make = functools.partial(Wav2LipLipSync, checkpoint=checkpoint)
            await throughput("Wav2Lip 96x96, random weights, CPU", make, moving, counts, args.wav2lip_seconds)
        if args.throughput_only:
            return

        pool = model_pool(device="cpu")
        first, second = role_config("host", moving), role_config("guide", other, fps=30, rate=1.25)
        print("\n2. RSS added per extra session of a loaded role (speaking)")
        await memory_per_session(pool, first, 6, with_peers=False)
        await memory_per_session(pool, first, 6, with_peers=True)

        times = await role_switch_ms(pool, first, second, 20)
        print(
            f"\n3. role switch on a preloaded role (avatar, voice, fps; half mid-sentence): median "
            f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms over {len(times)} switches (goal 100)"
        )

        if not args.skip_capacity:
            await capacity(pool, first, args.max_sessions, args.window)
        await pool.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a default-engine throughput point")
    parser.add_argument("--wav2lip-seconds", type=float, default=4.0, help="length of a Wav2Lip throughput point")
    parser.add_argument("--sessions", default="1,2,4,8", help="session counts for the throughput table")
    parser.add_argument("--max-sessions", type=int, default=12, help="most sessions the capacity search tries")
    parser.add_argument("--window", type=float, default=6.0, help="seconds each capacity point is measured")
    parser.add_argument("--skip-wav2lip", action="store_true")
    parser.add_argument("--skip-atlas", action="store_true", help="no video avatar (its build takes a few seconds)")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--throughput-only", action="store_true", help="only part 1, the batching table")
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
