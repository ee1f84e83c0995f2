"""Server CPU per speaking session, by stage, with the WebRTC clients in another process.

This process is the server: N ``LiveSession``s (Piper, the default lip-sync,
25 fps) speak a long paragraph at once, each to an aiortc client that runs in a
child process (the offer and answer cross a pipe), so the client's decoding is
not charged to the server. Each stage's work is timed with the CPU clock of the
thread that does it (``time.thread_time``), the process total with
``resource.getrusage``; what no stage claims (the event loop, asyncio, RTCP,
ICE) is "other". Shares are of the same run, so other load on the machine
moves the totals less than the split.

    python -m bench.stage_costs [--sessions 4] [--seconds 8] [--shown 320]

With ``--shown W`` the same sessions run a second time with a page that shows the video W px wide
(``video_size``): the frames are encoded at that size instead of the avatar's 512 px, and the two runs' encode
CPU per frame and total CPU per session are printed side by side, as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import resource
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.remote_clients import sessions_with_remote_clients
from testkit.defaults import degrade_policy, model_pool

FPS = 25
AUDIO_PACKETS = 50  # a second of 20 ms opus packets

# Stages, by the unit their cost grows with.
VIDEO_ENCODE, SWSCALE, OPENCV_YUV = "video encode", "RGB→YUV (swscale)", "RGB→YUV (OpenCV)"
VIDEO_FRAME = "frame → av.VideoFrame"
SCALE = "scale to the sent size"
LIPSYNC = "lip-sync (render + paste)"
OPUS, AUDIO_FRAME = "audio resample + opus", "samples → av.AudioFrame"
RTP, SRTP = "RTP packetise", "SRTP encrypt + UDP send"
TTS, FEATURES = "TTS (Piper)", "features (mel, 16→48 kHz)"
PER_VIDEO_FRAME = (VIDEO_ENCODE, SWSCALE, OPENCV_YUV, VIDEO_FRAME, SCALE, LIPSYNC)
PER_AUDIO_PACKET = (OPUS, AUDIO_FRAME)
PER_RTP_PACKET = (RTP, SRTP)
PER_SPEECH_SECOND = (TTS, FEATURES)


class StageClock:
    """CPU seconds per stage, each measured on the thread that did the work.

    A stage called inside another (RGB→YUV inside an encoder's ``encode``, a
    base class's ``encode`` inside its subclass's) is charged to the inner
    stage only, and the same stage nested in itself once.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []
        self._local = threading.local()
        self.speech_seconds = 0.0  # of TTS output: its cost per second of speech is what a session pays

    @contextmanager
    def charge(self, stage: str, units: int = 1) -> Iterator[None]:
        stack = self._local.__dict__.setdefault("stack", [])
        if stack and stack[-1][0] == stage:
            yield
            return
        frame = [stage, time.thread_time(), 0.0]  # stage, started, seconds of nested stages
        stack.append(frame)
        try:
            yield
        finally:
            stack.pop()
            spent = time.thread_time() - frame[1]
            self.seconds[stage] += spent - frame[2]
            self.calls[stage] += units
            if stack:
                stack[-1][2] += spent

    def wrap(self, owner: Any, name: str, stage: str, units: Callable[..., int] | None = None) -> None:
        """Charge every call of ``owner.name`` (a plain function) to ``stage``; a call counts ``units(*args)``
        (default 1) of the stage's unit."""
        original = owner.__dict__[name] if isinstance(owner, type) and name in owner.__dict__ else getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.charge(stage, 1 if units is None else units(*args)):
                return original(*args, **kwargs)

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def wrap_coroutine(self, owner: Any, name: str, stage: str) -> None:
        """Charge each ``await owner.name(...)`` to ``stage``: right for coroutines that do not suspend in practice
        (a UDP send); otherwise it would include what other tasks did meanwhile."""
        original = getattr(owner, name)

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.thread_time() - started
                self.calls[stage] += 1

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.speech_seconds = 0.0

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def instrument(clock: StageClock) -> None:
    """Wrap the functions each stage of a speaking session spends its CPU in."""
    import aiortc.codecs.h264
    import aiortc.codecs.opus
    import aiortc.codecs.vpx
    import aiortc.rtcdtlstransport
    import aiortc.rtp
    import av

    import realtime.pipeline.features
    import realtime.tracks
    from realtime import media_codecs
    from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync

    encoders = (aiortc.codecs.vpx.Vp8Encoder, aiortc.codecs.h264.H264Encoder, *media_codecs.VIDEO_ENCODERS.values())
    for encoder in encoders:
        clock.wrap(encoder, "encode", VIDEO_ENCODE)
    clock.wrap(av.VideoFrame, "reformat", SWSCALE)
    clock.wrap(aiortc.codecs.opus.OpusEncoder, "encode", OPUS)
    clock.wrap(aiortc.rtp.RtpPacket, "serialize", RTP)
    clock.wrap_coroutine(aiortc.rtcdtlstransport.RTCDtlsTransport, "_send_rtp", SRTP)
    clock.wrap(MouthWarpLipSync, "render_batch", LIPSYNC, units=lambda engine, requests: len(requests))
    clock.wrap(media_codecs, "i420_planes", OPENCV_YUV)
    clock.wrap(media_codecs, "resized", SCALE)  # idle frames, converted once per size
    clock.wrap(realtime.tracks, "resized", SCALE)  # speech frames
    clock.wrap(realtime.pipeline.features, "_features", FEATURES)
    clock.wrap(av.VideoFrame, "from_ndarray", VIDEO_FRAME)
    clock.wrap(realtime.tracks.av.AudioFrame, "from_ndarray", AUDIO_FRAME)

    from piper import PiperVoice

    original = PiperVoice.synthesize

    def synthesize(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        chunks = original(self, *args, **kwargs)
        while True:
            started = time.thread_time()
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                clock.seconds[TTS] += time.thread_time() - started
            clock.speech_seconds += len(chunk.audio_int16_array) / chunk.sample_rate
            yield chunk

    PiperVoice.synthesize = synthesize
    clock._undo.append(lambda: setattr(PiperVoice, "synthesize", original))


# --- the server ---------------------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    bundle: Path, sessions: int, seconds: float, shown: int | None = None
) -> tuple[StageClock, float, float, list[float], int]:
    """Run ``sessions`` speaking sessions, each shown ``shown`` px wide (None: a client that never says); the
    stage clock, server CPU s, wall s, client fps, lowest server fps."""
    from bench.talking import PARAGRAPH, loopback_bench_config
    from realtime.frame_size import ShownSize

    # The role's own fps and frame size throughout: a ladder stepping down under the machine's other load would
    # change the very frames whose cost is measured.
    config = loopback_bench_config(bundle, degrade=degrade_policy(enabled=False))
    pool = model_pool(device="cpu")
    await pool.warm(
        tts_engine=config.tts_engine, voice=config.voice, lipsync_engine=config.lipsync_engine, avatar_path=bundle
    )
    stages = StageClock()
    instrument(stages)
    try:
        async with sessions_with_remote_clients(config, pool, sessions) as clients:
            lives = clients.lives
            for n, live in enumerate(lives):
                if shown is not None:
                    live.set_shown_size(ShownSize(shown, shown))
                await live.say(PARAGRAPH * 3, n + 1)
            async with asyncio.timeout(60):
                while not all(live.state.value == "speaking" for live in lives):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # past the first sentence's start-up
            stages.reset()
            lowest = [live.rate.fps for live in lives]
            started_cpu, started_wall, started_at = cpu_seconds(), time.perf_counter(), time.time()
            while time.perf_counter() - started_wall < seconds:
                await asyncio.sleep(0.2)
                lowest = [min(low, live.rate.fps) for low, live in zip(lowest, lives, strict=True)]
            cpu, wall = cpu_seconds() - started_cpu, time.perf_counter() - started_wall
            received = await clients.video_fps((started_at, started_at + wall))
    finally:
        stages.restore()
        await pool.aclose()
    return stages, cpu, wall, received, min(lowest)


def at_full_rate(stages: StageClock, other: float, wall: float, sessions: int) -> dict[str, float]:
    """Each stage's ms of CPU per second for one session at 25 fps, 50 audio packets/s and 1 s of speech per s.

    A loaded machine sends fewer frames than that (the tracks skip late slots);
    each stage's cost per unit (frame, packet, second of speech) is measured,
    and multiplied here by the units a session at full rate needs. What no stage
    claims is scaled with the video frames.
    """
    frames = stages.calls[VIDEO_ENCODE] / wall / sessions
    packets = stages.calls[OPUS] / wall / sessions
    video_packets = max(0.0, stages.calls[RTP] / wall / sessions - packets) / max(frames, 1e-9)
    needed = {stage: FPS for stage in PER_VIDEO_FRAME} | {stage: AUDIO_PACKETS for stage in PER_AUDIO_PACKET}
    needed |= {stage: AUDIO_PACKETS + video_packets * FPS for stage in PER_RTP_PACKET}
    costs = {}
    for stage, seconds in stages.seconds.items():
        if stage in PER_SPEECH_SECOND:
            costs[stage] = 1000 * seconds / max(stages.speech_seconds, 1e-9)
        else:
            costs[stage] = 1000 * seconds / max(stages.calls[stage], 1) * needed[stage]
    costs["other (event loop, asyncio, RTCP)"] = 1000 * other / wall / sessions * FPS / max(frames, 1e-9)
    return costs


def report(stages: StageClock, cpu: float, wall: float, sessions: int) -> float:
    """Print the cost table; return the ms of CPU per second one session needs at full rate."""
    frames = stages.calls[VIDEO_ENCODE] / wall / sessions
    packets = stages.calls[OPUS] / wall / sessions
    print(
        f"server CPU: {cpu / wall:.2f} cores for {sessions} speaking sessions sending {frames:.1f} frames and "
        f"{packets:.1f} audio packets a second each, {stages.speech_seconds / wall / sessions:.2f} s of speech "
        f"synthesised per second each"
    )
    other = max(0.0, cpu - sum(stages.seconds.values()))
    costs = at_full_rate(stages, other, wall, sessions)
    total = sum(costs.values())
    print(f"{'stage':<36}{'measured ms/s':>14}{'µs/unit':>9}{'at 25 fps ms/s':>16}{'share':>7}")
    for stage, cost in sorted(costs.items(), key=lambda item: -item[1]):
        seconds = stages.seconds.get(stage, other)
        units = stages.speech_seconds if stage in PER_SPEECH_SECOND else stages.calls.get(stage, 0)
        unit = f"{1e6 * seconds / units:>9.0f}" if units else f"{'':>9}"
        print(f"{stage:<36}{1000 * seconds / wall / sessions:>14.1f}{unit}{cost:>16.1f}{100 * cost / total:>6.0f}%")
    print(
        f"{'total per speaking session':<36}{1000 * cpu / wall / sessions:>14.1f}{'':>9}{total:>16.1f}\n"
        f"speaking sessions at 25 fps that 2 cores hold at this cost: {2000 / total:.1f} "
        "(units: µs per video frame, audio packet, RTP packet, or second of speech for TTS and features)"
    )
    return total


async def main(args: argparse.Namespace) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    django.setup()
    from testkit.bundles import write_astronaut_bundle

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: read the ratios)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_astronaut_bundle(Path(tmp) / "avatar", frame_count=16)
        for shown in (None, args.shown) if args.shown else (None,):
            stages, cpu, wall, received, lowest = await measure(bundle, args.sessions, args.seconds, shown)
            sent = "at the avatar's 512 px" if shown is None else f"at {shown} px (the shown size)"
            print(
                f"\n{args.sessions} sessions speaking for {wall:.1f} s, frames sent {sent}: "
                f"client fps min {min(received):.1f}, lowest server fps {lowest}"
            )
            total = report(stages, cpu, wall, args.sessions)
            encode = stages.seconds[VIDEO_ENCODE] / max(stages.calls[VIDEO_ENCODE], 1)
            scale = stages.seconds[SCALE] / max(stages.calls[SCALE], 1)  # per speech frame (idle ones: scaled once)
            results[shown] = (encode, encode + scale, total)
    if args.shown:
        (full_encode, full_video, full_total), (encode, video, total) = results[None], results[args.shown]
        print(
            f"\nshown size {args.shown} px vs full 512 px (CPU time, this run), a frame: encode {1e6 * encode:.0f} vs "
            f"{1e6 * full_encode:.0f} µs = {encode / full_encode:.2f}×, encode + scale {1e6 * video:.0f} vs "
            f"{1e6 * full_video:.0f} µs = {video / full_video:.2f}×; server CPU per speaking session at 25 fps "
            f"{total:.0f} vs {full_total:.0f} ms/s = {total / full_total:.2f}× (TTS dominates it, and varies)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--shown", type=int, default=0, help="also run with the video shown this many px wide")
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
