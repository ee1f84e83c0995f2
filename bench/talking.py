"""Talking-avatar benchmark: lip-sync pipeline fps vs model-only fps, A/V skew over a long say, interrupt time.

1. Pipeline fps per engine: text in, finished frames out through the
   production pipeline (speech, features and render stages, the pool's render
   executor; TTS replaced by ready 16 kHz speech, the player by a counter, so
   nothing waits on the clock), against ``model_only_fps`` of the same engine
   at the same batch size. Goal: ratio ≥ 0.9 — the pipeline adds little to
   the model's own cost. "model busy" is the share of the pipeline's time the
   model was rendering: near 100 % means the pipeline never kept it waiting,
   and a lower ratio then comes from CPU contention, not from the pipeline.
2. A/V skew: a LiveSession with Piper and the default engine says a ~60-s text
   to an aiortc client over loopback WebRTC. Content lag: per 5-s window, the
   shift (in frames) that best lines the mouth opening of the received video up
   with the loudness of the received audio, both placed by their RTP timestamps.
   Arrival skew: how much later a video frame arrives than the audio stamped
   with the same instant (encode + decode + jitter buffers; what a client that
   plays on arrival would see).
3. Interrupt-to-silence: ``interrupt`` during speech, repeated; the time until
   the speech ends in what the server's audio track hands to aiortc (the track's
   own report, fade-out included), and until the client receives the silence.

    python -m bench.talking [--seconds 60] [--frames 100] [--pipeline-seconds 3] [--interrupts 5] [--skip-wav2lip]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.lipsync_engines import FPS, model_only_fps, speech_like_audio
from realtime.audio import SAMPLE_RATE, to_int16
from realtime.avatar.reader import AvatarBundle
from realtime.clock import SessionClock
from realtime.config import SessionConfig
from realtime.engines.lipsync.base import LipSyncEngine, LipSyncRequest
from realtime.engines.tts.base import PCM, TTSEngine, VoiceSettings
from realtime.frames import AVSegment, MessageEnd
from realtime.ledger import MessageTimings
from realtime.pipeline import SpeechPipeline, TaskOwner
from realtime.pipeline.stage import Generation, Stage
from realtime.pool import ModelPool, default_device
from realtime.session import LiveSession
from realtime.timeline import FrameRate, PlayoutTimeline
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import model_pool, open_bundle, playout_settings, session_config
from testkit.peers import Received, ReceivingPeer, mouth_change, rms, spy_first_pts

BATCH = 8
SENTENCE_S = 3.0  # audio handed to the features stage a sentence at a time, as Piper delivers it
SILENT_RMS = 30
MODEL_SECONDS = 3.0  # how long model_only_fps measures each engine
ROUNDS = 3
PARAGRAPH = (
    "Good morning, and welcome to the station. I am the astronaut who looks after this module. "
    "Today we check the air, the water and the power, one system after another. "
    "If anything looks wrong, I will tell you what it means and what we should do next. "
    "Most days nothing goes wrong at all, and the work is quiet and careful. "
)


# --- 1. pipeline fps vs model-only fps ---------------------------------------------------------------------


class InstantTTS(TTSEngine):
    """Hands over a prepared 16 kHz sentence at once, so the measurement is the lip-sync path alone."""

    def __init__(self, sentence: np.ndarray) -> None:
        super().__init__(VoiceSettings())
        self.sentence = sentence

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        yield PCM(self.sentence, SAMPLE_RATE)


class CountingSink(Stage):
    """Stands in for the player: counts finished frames instead of pacing them on the clock."""

    name = "sink"

    def __init__(self, generation: Generation) -> None:
        super().__init__(generation, maxsize=0)
        self.frames = 0
        self.done = asyncio.Event()

    async def process(self, item: Any) -> None:
        if isinstance(item, AVSegment):
            self.frames += 1
        elif isinstance(item, MessageEnd):
            self.done.set()


class TimedEngine:
    """Wraps an engine and adds up the time its ``render_batch`` runs (in the render thread)."""

    def __init__(self, engine: LipSyncEngine) -> None:
        self.engine = engine
        self.busy_s = 0.0

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        started = time.perf_counter()
        try:
            return self.engine.render_batch(requests)
        finally:
            self.busy_s += time.perf_counter() - started


async def pipeline_fps(engine: LipSyncEngine, bundle: AvatarBundle, frames: int) -> tuple[float, float]:
    """Frames per second from text to finished frames through the production pipeline's speech, features and
    render stages (their queue sizes, the pool's render executor), with the player replaced by a counter; and
    the share of that time the model was busy (1.0: the pipeline never kept the model waiting)."""
    pool = model_pool(device=engine.device)
    owner = TaskOwner()
    timed = TimedEngine(engine)
    sentences = max(1, round(frames / FPS / SENTENCE_S))
    pipeline = SpeechPipeline(
        owner=owner,
        clock=SessionClock(),
        timeline=PlayoutTimeline(),
        rate=FrameRate(FPS),
        avatar=bundle,
        tts=InstantTTS(to_int16(speech_like_audio(frames / FPS / sentences))),
        render=lambda requests: pool.render(timed, requests),
        listener=NoListener(),
        settings=playout_settings(batch_size=BATCH),
        split=lambda text: text.split("|"),
    )
    sink = CountingSink(pipeline.generation)
    pipeline.render.downstream = sink
    pipeline.stages[-1] = sink
    pipeline.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    pipeline.say("|".join(f"sentence {n}" for n in range(sentences)), message_id=1)
    await sink.done.wait()
    elapsed = loop.time() - started
    await owner.aclose()
    await pool.aclose()
    return sink.frames / elapsed, timed.busy_s / elapsed


class NoListener:
    def audio_started(self, message_id: int) -> None: ...

    def sentence_on_air(self, message_id: int, text: str) -> None: ...

    def message_played(self, message_id: int) -> None: ...

    def sentence_failed(self, message_id: int, text: str, error: Exception) -> None: ...


async def compare_engines(bundle: AvatarBundle, frames: int, seconds: float, with_wav2lip: bool, folder: Path) -> None:
    from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync

    engines: list[tuple[str, LipSyncEngine]] = [("mouth_warp", MouthWarpLipSync())]
    if with_wav2lip:
        from realtime.engines.lipsync.wav2lip import Wav2LipLipSync
        from testkit.bundles import write_random_wav2lip_checkpoint

        checkpoint = write_random_wav2lip_checkpoint(folder / "random.pth")
        engines.append(("wav2lip (random weights)", Wav2LipLipSync(default_device(), checkpoint)))
    print(
        f"\n1. lip-sync pipeline vs model only (about {seconds:.0f} s or {frames} frames, batch {BATCH}, goal >= 0.9; "
        f"median of {ROUNDS} interleaved rounds)"
    )
    print(f"{'engine':26} {'model fps':>10} {'pipeline fps':>13} {'ratio':>6} {'model busy':>11}")
    for name, engine in engines:
        rounds = []
        for _ in range(ROUNDS):  # interleaved, so a burst of load from elsewhere hits both sides alike
            model = await asyncio.to_thread(model_only_fps, engine, bundle, BATCH, MODEL_SECONDS)
            count = max(frames, round(model * seconds))  # long enough to be past start-up, for a fast engine too
            pipeline, busy = await pipeline_fps(engine, bundle, count)
            rounds.append((pipeline / model, model, pipeline, busy))
        ratio, model, pipeline, busy = sorted(rounds)[len(rounds) // 2]
        print(f"{name:26} {model:>10.1f} {pipeline:>13.1f} {ratio:>6.2f} {busy:>10.0%}")


# --- 2 and 3. a live session over loopback WebRTC ------------------------------------------------------------


class Events:
    """SessionEvents that keep what happened, with loop times."""

    def __init__(self) -> None:
        self.finished: dict[int, MessageTimings] = {}
        self.states: list[tuple[float, str]] = []

    async def state_changed(self, state: str) -> None:
        self.states.append((asyncio.get_running_loop().time(), state))

    async def subtitle(self, text: str, message_id: int) -> None:
        pass

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None:
        self.finished[message_id] = timings

    async def error(self, code: str, message: str) -> None:
        print(f"   session error {code}: {message}")

    async def ended(self, reason: str) -> None:
        print(f"   session ended: {reason}")

    async def media_started(self) -> None:
        pass


async def until(condition, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def loopback_bench_config(bundle_path: Path, **extra: Any) -> SessionConfig:
    """A benchmark session (the bundle, Piper, the default lip-sync) whose WebRTC stays on loopback."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only (FACTS.md)
    return session_config(
        session_id="bench",
        role_id=0,
        role_name="bench",
        fps=FPS,
        avatar_path=bundle_path,
        lipsync_engine="default",
        tts_engine="piper",
        voice=VoiceSettings(),
        **extra,
    )


async def open_call(bundle_path: Path) -> tuple[LiveSession, ReceivingPeer, Events, dict[str, int], ModelPool]:
    config = loopback_bench_config(bundle_path)
    pool, events = model_pool(device="cpu"), Events()
    live = await LiveSession.open(config, pool, events)
    first_pts = spy_first_pts(live)
    client = ReceivingPeer()
    await client.accept(await live.accept_offer(await client.offer()))
    await until(lambda: len(client.video) > 5 and len(client.audio) > 10, 10)
    return live, client, events, first_pts, pool


def window_lags(live: LiveSession, client: ReceivingPeer, first_pts: dict[str, int], window_s: float) -> list[int]:
    """Per window of speech, the frame shift that best aligns received mouth opening with received loudness."""
    still, box = live.lease.avatar.frames[0], live.lease.avatar.mouth_boxes[0]
    loud: dict[int, list[float]] = {}
    for frame in client.audio:
        loud.setdefault(int((frame.pts + first_pts["audio"]) * FPS / 48_000), []).append(rms(frame.data))
    mouth = {round((f.pts + first_pts["video"]) * FPS / 90_000): mouth_change(f.data, still, box) for f in client.video}
    ticks = sorted(t for t in set(mouth) & set(loud))
    size = int(window_s * FPS)
    lags = []
    for start in range(0, len(ticks) - size + 1, size):
        window = ticks[start : start + size]
        level = np.array([np.mean(loud[t]) for t in window])
        opening = np.array([mouth[t] for t in window])
        if level.max() < 500:
            continue  # no speech in this window
        scores = {lag: np.corrcoef(np.roll(opening, lag)[5:-5], level[5:-5])[0, 1] for lag in range(-5, 6)}
        lags.append(max(scores, key=scores.get))
    return lags


def arrival_skew_ms(client: ReceivingPeer, first_pts: dict[str, int]) -> list[float]:
    """Per second: median video (arrival − timestamp) minus median audio (arrival − timestamp), in ms."""

    def offsets(frames, first: int, rate: int) -> dict[int, list[float]]:
        by_second: dict[int, list[float]] = {}
        for f in frames:
            stamp = (f.pts + first) / rate
            by_second.setdefault(int(stamp), []).append(f.arrived - stamp)
        return by_second

    video = offsets(client.video, first_pts["video"], 90_000)
    audio = offsets(client.audio, first_pts["audio"], 48_000)
    return [1000 * (statistics.median(video[s]) - statistics.median(audio[s])) for s in sorted(set(video) & set(audio))]


async def long_say(bundle_path: Path, seconds: float) -> None:
    live, client, events, first_pts, pool = await open_call(bundle_path)
    text = PARAGRAPH * max(1, round(seconds / 17))  # Piper speaks this paragraph in about 17 s
    await live.say(text, 1)
    await until(lambda: 1 in events.finished, seconds * 3 + 30)
    timings = events.finished[1]
    lags = window_lags(live, client, first_pts, 5.0)
    skew = arrival_skew_ms(client, first_pts)
    on_air = (timings.total_ms - (timings.first_frame_ms or 0)) / 1000
    print(f"\n2. A/V skew over a {on_air:.0f}-s say (Piper + mouth_warp, loopback WebRTC, {len(lags)} windows of 5 s)")
    print(f"   content lag, mouth vs loudness: {[lag * 1000 // FPS for lag in lags]} ms (one frame = {1000 // FPS} ms)")
    print(f"   max |content lag|: {max(abs(lag) for lag in lags) * 1000 / FPS:.0f} ms")
    print(
        f"   arrival skew video-after-audio: median {statistics.median(skew):.0f} ms, "
        f"p95 |skew| {np.percentile(np.abs(skew), 95):.0f} ms, first 5 s {np.mean(skew[:5]):.0f} ms, "
        f"last 5 s {np.mean(skew[-5:]):.0f} ms (drift)"
    )
    print(
        f"   message timings: tts first audio {timings.tts_first_audio_ms} ms, first frame {timings.first_frame_ms} ms"
    )
    print(f"   frames received: {len(client.video)} video, {len(client.audio)} audio packets")
    await client.close()
    await live.close()
    await pool.aclose()


async def interrupts(bundle_path: Path, count: int) -> None:
    live, client, _, _, pool = await open_call(bundle_path)
    silent_at: list[float] = []  # session-clock time the speech ends in the first packet after each cut
    measure = live.audio_track.on_cut_heard

    def cut_heard(at: float) -> None:
        silent_at.append(at)
        if measure is not None:
            measure(at)

    live.audio_track.on_cut_heard = cut_heard
    loop = asyncio.get_running_loop()
    server_ms, client_ms = [], []
    for n in range(count):
        await live.say(PARAGRAPH, 100 + n)
        await until(lambda: client.audio and rms(client.audio[-1].data) > 500, 20)
        await asyncio.sleep(0.3)
        cut, cut_clock = loop.time(), live.clock.now()
        await live.interrupt()
        await asyncio.sleep(0.6)
        server_ms.append(1000 * (silent_at[-1] - cut_clock))
        client_ms.append(1000 * (silence_begins([f for f in client.audio if f.arrived >= cut]) - cut))
    print(f"\n3. interrupt to silence ({count} interrupts during speech)")
    print(f"   server audio track: median {statistics.median(server_ms):.0f} ms, max {max(server_ms):.0f} ms")
    print(
        f"   client received:    median {statistics.median(client_ms):.0f} ms, max {max(client_ms):.0f} ms "
        "(goal 200; includes the client's jitter buffer)"
    )
    await client.close()
    await live.close()
    await pool.aclose()


def silence_begins(packets: list[Received]) -> float:
    """When the silence that lasts to the end begins: the arrival of the last packet with sound in it plus where,
    in 2.5-ms blocks, its sound ends (a cut's fade-out ends 5 ms in); the first packet's arrival if none sounds."""
    loud = [packet for packet in packets if rms(packet.data) >= SILENT_RMS]
    if not loud:
        return packets[0].arrived
    blocks = np.array_split(loud[-1].data, 8)
    sounding = [n for n, block in enumerate(blocks) if rms(block) >= SILENT_RMS]
    return loud[-1].arrived + (sounding[-1] + 1 if sounding else 0) * 0.0025


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        moving = open_bundle(write_astronaut_bundle(folder / "moving", frame_count=16))
        still = write_astronaut_bundle(folder / "still", frame_count=1)
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes skew the numbers), "
            f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
        )
        await compare_engines(moving, args.frames, args.pipeline_seconds, not args.skip_wav2lip, folder)
        await long_say(still, args.seconds)
        await interrupts(still, args.interrupts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the long say")
    parser.add_argument("--frames", type=int, default=100, help="fewest frames per pipeline fps run")
    parser.add_argument("--pipeline-seconds", type=float, default=3.0, help="length of a pipeline fps run")
    parser.add_argument("--interrupts", type=int, default=5)
    parser.add_argument("--skip-wav2lip", action="store_true")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
