"""Voice input speed: silero VAD and every ASR engine that runs here, on Piper sentences in 20-ms chunks.

Numbers for DESIGN.md §8: the VAD's cost per chunk and its end-of-turn
latency (end of speech → end of turn), pocketsphinx's real-time factor while
streaming and the tail left at end of turn (end of turn → final transcript),
the cost of a decoder (why they are pooled), and the longest stall of the
event loop while each runs.

Then one table for the engines side by side, audio fed as fast as each takes
it: real-time factor (compute over audio length, streaming and end of turn
together), the tail at end of turn, and the first partial transcript — after
how much speech it came (the engine's own latency: FunASR decodes in 600-ms
steps) and how long after the first chunk in wall time. FunASR runs its real
code path on a tiny random model (mechanics and overhead only: a real model
costs far more per step); the two cloud engines talk to local servers that
speak their protocols on 127.0.0.1 (protocol and client overhead only, no
network or cloud decoding).

    python -m bench.voice_input
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import django
import psutil

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
django.setup()

from livehuman_site.conf import DEFAULTS  # noqa: E402
from realtime.engines.asr.pocketsphinx import DecoderPool, PocketsphinxASR, Recogniser  # noqa: E402
from realtime.vad import EndOfTurn, SileroModel, TurnDetector  # noqa: E402
from testkit.defaults import cloud_asr_settings  # noqa: E402
from testkit.speech import (  # noqa: E402
    SENTENCES,
    SpeechSynthesizer,
    word_error_rate,
)


class LoopStallMeter:
    """Measures the longest the event loop went without running a 5-ms ticker."""

    def __init__(self) -> None:
        self.worst_s = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst_s = max(self.worst_s, loop.time() - before - 0.005)


async def measure_under_meter(work) -> tuple[object, float]:
    meter = LoopStallMeter()
    ticker = asyncio.create_task(meter.run())
    await asyncio.sleep(0.01)
    try:
        return await work(), meter.worst_s
    finally:
        ticker.cancel()


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def bench_decoder_cost() -> None:
    kept = [Recogniser()]  # the first one also pays for page-ins of the shared libraries
    costs, memory = [], []
    for _ in range(3):
        before, started = rss_mb(), time.perf_counter()
        kept.append(Recogniser())
        costs.append(time.perf_counter() - started)
        memory.append(rss_mb() - before)
    print(
        f"pocketsphinx Decoder: {1000 * statistics.median(costs):.0f} ms and "
        f"{statistics.median(memory):.0f} MB resident each (why sessions lease them from a pool)"
    )


async def bench_vad(speech: SpeechSynthesizer) -> None:
    import torch  # noqa: F401  (imported by silero_vad; timed apart from the model)

    started = time.perf_counter()
    SileroModel.shared()
    print(f"silero VAD load (torch already imported): {1000 * (time.perf_counter() - started):.0f} ms")
    latencies, chunk_costs, audio_s, spent_s, stalls = [], [], 0.0, 0.0, []
    for sentence in SENTENCES:
        utterance = speech(sentence, lead_s=0.5, tail_s=1.0)
        detector = TurnDetector(silence_ms=DEFAULTS["VAD_SILENCE_MS"], min_speech_ms=DEFAULTS["VAD_MIN_SPEECH_MS"])

        async def feed_all(detector=detector, utterance=utterance):
            events = []
            for chunk in utterance.chunks():
                began = time.perf_counter()
                events += detector.feed(chunk)
                chunk_costs.append(time.perf_counter() - began)
                await asyncio.sleep(0)
            return events

        began = time.perf_counter()
        events, stall = await measure_under_meter(feed_all)
        spent_s += time.perf_counter() - began
        audio_s += utterance.duration_s
        stalls.append(stall)
        ends = [event for event in events if isinstance(event, EndOfTurn)]
        latencies.append(ends[0].at_s - utterance.speech_end_s)
    chunk_costs.sort()
    p50, p99 = (chunk_costs[int(q * (len(chunk_costs) - 1))] for q in (0.5, 0.99))
    print(
        f"silero VAD: RTF {spent_s / audio_s:.4f} (incl. the loop's own work), per 20-ms chunk "
        f"p50 {1e6 * p50:.0f} µs, p99 {1e6 * p99:.0f} µs, worst loop stall {1000 * max(stalls):.1f} ms"
    )
    print(
        "end of speech → end of turn (VAD_SILENCE_MS "
        f"{detector.silence_s * 1000:.0f}): " + ", ".join(f"{1000 * latency:.0f} ms" for latency in latencies)
    )


async def bench_pocketsphinx(speech: SpeechSynthesizer) -> None:
    engine = PocketsphinxASR(pool=DecoderPool())
    await engine.load()
    audio_s = stream_s = 0.0
    tails, stalls, rates = [], [], []
    for sentence in SENTENCES:
        utterance = speech(sentence, lead_s=0.3, tail_s=0.3)

        async def recognise(utterance=utterance):
            engine.start()
            began = time.perf_counter()
            for chunk in utterance.chunks():
                await engine.accept(chunk)
            streamed = time.perf_counter() - began
            began = time.perf_counter()
            text = await engine.finish()
            return streamed, time.perf_counter() - began, text

        (streamed, tail, text), stall = await measure_under_meter(recognise)
        audio_s += utterance.duration_s
        stream_s += streamed
        tails.append(tail)
        stalls.append(stall)
        rates.append(word_error_rate(sentence, text))
        print(f"  WER {rates[-1]:.2f}  {sentence!r} → {text!r}")
    print(
        f"pocketsphinx: mean WER {statistics.mean(rates):.3f}, streaming RTF {stream_s / audio_s:.3f}, "
        f"end of turn → final transcript p50 {1000 * statistics.median(tails):.0f} ms "
        f"(max {1000 * max(tails):.0f}), worst loop stall {1000 * max(stalls):.1f} ms"
    )


@dataclass
class EngineRun:
    """One engine over all the sentences: totals and the first partial of each."""

    name: str
    audio_s: float = 0.0
    compute_s: float = 0.0
    tails_s: list[float] = field(default_factory=list)
    first_partial_audio_s: list[float] = field(default_factory=list)
    first_partial_wall_s: list[float] = field(default_factory=list)

    def row(self) -> str:
        def median_ms(values: list[float]) -> str:
            return f"{1000 * statistics.median(values):6.0f}" if values else "     –"

        return (
            f"{self.name:<36} {self.compute_s / self.audio_s:7.3f} {median_ms(self.tails_s)} ms "
            f"{median_ms(self.first_partial_audio_s)} ms {median_ms(self.first_partial_wall_s)} ms"
        )


async def run_engine(name: str, engine, utterances) -> EngineRun:
    """Feed each utterance's 20-ms chunks as fast as the engine takes them, then end the turn."""
    run = EngineRun(name)
    for utterance in utterances:
        engine.start()
        fed_s, first_wall = 0.0, None
        began = time.perf_counter()
        for chunk in utterance.chunks():
            fed_s += len(chunk) / 16_000
            if await engine.accept(chunk) and first_wall is None:
                first_wall = time.perf_counter() - began
                run.first_partial_audio_s.append(fed_s)
                run.first_partial_wall_s.append(first_wall)
        finishing = time.perf_counter()
        await engine.finish()
        run.tails_s.append(time.perf_counter() - finishing)
        run.compute_s += time.perf_counter() - began
        run.audio_s += utterance.duration_s
    await engine.aclose()
    return run


async def bench_engines(speech: SpeechSynthesizer) -> None:
    from realtime.engines.asr.base import CloudASRSettings
    from realtime.engines.asr.dashscope import DashScopeRealtimeASR
    from realtime.engines.asr.funasr import FunASRStreamingASR
    from realtime.engines.asr.openai_transcribe import OpenAITranscriptionASR
    from testkit.asr_servers import DashScopeServer, TranscriptionServer
    from testkit.funasr_models import write_punctuation_model, write_streaming_paraformer
    from testkit.outbound import policy_allowing

    for chatty in ("httpx", "aiohttp.access", "websockets.server", "root"):
        logging.getLogger(chatty).setLevel(logging.WARNING)  # a line per request would bury the table
    utterances = [speech(sentence, lead_s=0.3, tail_s=0.3) for sentence in SENTENCES]
    runs = [await run_engine("pocketsphinx", PocketsphinxASR(pool=DecoderPool()), utterances)]

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_streaming_paraformer(Path(folder) / "paraformer")
        write_punctuation_model(Path(folder) / "punc")
        funasr = FunASRStreamingASR(str(Path(folder) / "paraformer"), str(Path(folder) / "punc"))
        await funasr.load()
        print(f"FunASR import, writing and loading the tiny model folders: {time.perf_counter() - started:.1f} s")
        runs.append(await run_engine("FunASR (tiny random model)", funasr, utterances))

    def cloud(url: str) -> CloudASRSettings:
        return cloud_asr_settings(base_url=url, api_key="sk-bench", language="en", outbound=policy_allowing(url))

    async with TranscriptionServer() as server:
        engine = OpenAITranscriptionASR(cloud(server.base_url))
        runs.append(await run_engine("OpenAI transcription (local server)", engine, utterances))
    async with DashScopeServer() as server:
        engine = DashScopeRealtimeASR(cloud(server.url))
        runs.append(await run_engine("DashScope real-time (local server)", engine, utterances))

    print(f"\n{'engine':<36} {'RTF':>7} {'tail':>9} {'1st partial':>12} {'(wall)':>9}")
    print(f"{'':<36} {'':>7} {'p50':>9} {'speech p50':>12} {'p50':>9}")
    for run in runs:
        print(run.row())
    base = runs[0].compute_s / runs[0].audio_s
    print("RTF relative to pocketsphinx: " + ", ".join(f"{r.name} {r.compute_s / r.audio_s / base:.2f}×" for r in runs))


async def main() -> None:
    speech = SpeechSynthesizer()
    bench_decoder_cost()
    await bench_vad(speech)
    await bench_pocketsphinx(speech)
    await bench_engines(speech)


if __name__ == "__main__":
    asyncio.run(main())
