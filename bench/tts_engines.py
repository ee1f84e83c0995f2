"""Offline TTS speed: real-time factor (synthesis time / audio duration) and time to first audio.

Both numbers matter for DESIGN.md §8: the real-time factor says how many
sessions can speak at once, the first-audio time is the "first text chunk →
first audio" budget (≤ 200 ms). Each engine runs once untimed (loads its model).
The first audio is timed twice: for the whole first sentence, and for the
sentence splitter's first chunk (what an answer really sends first).

    python -m bench.tts_engines [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from realtime.engines.tts.base import TTSEngine, VoiceSettings
from realtime.engines.tts.espeak import EspeakTTS
from realtime.engines.tts.piper import PiperTTS
from realtime.text import split_text

TEXTS = {
    "en": [
        "Hello, and welcome to the live demo.",
        "I can answer questions about our products, opening hours, and prices. What would you like to know?",
    ],
    "zh": ["你好，欢迎来到数字人直播间。", "我可以回答关于产品、营业时间和价格的问题。"],
}


async def measure(engine: TTSEngine, text: str) -> tuple[float, float, float]:
    """(seconds to first chunk, seconds in total, seconds of audio)."""
    started = time.perf_counter()
    first = None
    audio = 0.0
    async for chunk in engine.synthesize(text):
        first = first if first is not None else time.perf_counter() - started
        audio += chunk.duration
    return first or 0.0, time.perf_counter() - started, audio


async def run(repeats: int) -> None:
    cases = [
        ("piper en", PiperTTS(VoiceSettings()), TEXTS["en"]),
        ("espeak-ng en", EspeakTTS(VoiceSettings(language="en")), TEXTS["en"]),
        ("espeak-ng zh", EspeakTTS(VoiceSettings(language="zh")), TEXTS["zh"]),
    ]
    print(f"{'engine':14} {'audio s':>8} {'synth s':>8} {'RTF':>6} {'first audio ms':>15} {'first chunk → ms':>17}")
    for name, engine, texts in cases:
        await measure(engine, texts[0])
        firsts, chunk_firsts, total, audio = [], [], 0.0, 0.0
        for _ in range(repeats):
            for text in texts:
                first, spent, seconds = await measure(engine, text)
                firsts.append(first)
                total += spent
                audio += seconds
                chunk_firsts.append((await measure(engine, split_text(text)[0]))[0])
        print(
            f"{name:14} {audio:>8.2f} {total:>8.2f} {total / audio:>6.3f} {1000 * median(firsts):>15.0f} "
            f"{1000 * median(chunk_firsts):>17.0f}"
        )
    for language, texts in TEXTS.items():
        print(f"first chunks ({language}): " + " | ".join(repr(split_text(text)[0]) for text in texts))


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(run(parser.parse_args().repeats))


if __name__ == "__main__":
    main()
