"""Voice input speed: silero VAD and pocketsphinx on Piper sentences streamed in 20-ms chunks.

Numbers for DESIGN.md §8: the VAD's cost per chunk and its end-of-turn
latency (end of speech → end of turn), pocketsphinx's real-time factor while
streaming and the tail left at end of turn (end of turn → final transcript),
the cost of a decoder (why they are pooled), and the longest stall of the
event loop while each runs.

    python -m bench.voice_input
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import django
import psutil

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
django.setup()

from livehuman_site.conf import DEFAULTS  # noqa: E402
from realtime.engines.asr.pocketsphinx import DecoderPool, PocketsphinxASR, Recogniser  # noqa: E402
from realtime.vad import EndOfTurn, SileroModel, TurnDetector  # noqa: E402
from tests.fixtures.speech import SpeechSynthesizer  # noqa: E402
from tests.test_asr_engines import SENTENCES, word_error_rate  # noqa: E402


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


async def main() -> None:
    speech = SpeechSynthesizer()
    bench_decoder_cost()
    await bench_vad(speech)
    await bench_pocketsphinx(speech)


if __name__ == "__main__":
    asyncio.run(main())
