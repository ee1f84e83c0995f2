"""Speech is synthesised once per voice and process: the same text for another session is replayed from memory,
streamed as it is made the first time, and nothing abandoned, failed or over the budget is kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np
import pytest

from realtime.engines.lipsync.mouth_warp import MouthWarpLipSync
from realtime.engines.tts.base import PCM, TTSEngine, TTSError, VoiceSettings
from realtime.engines.tts.memory import RememberingTTS
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import model_pool


class CountingTTS(TTSEngine):
    """Two chunks of 1 000 samples per text (their values tell the text apart); counts its syntheses."""

    def __init__(self, voice: VoiceSettings | None = None, fail: bool = False) -> None:
        super().__init__(voice or VoiceSettings())
        self.calls: list[str] = []
        self.fail = fail

    async def synthesize(self, text: str) -> AsyncIterator[PCM]:
        self.calls.append(text)
        for part in range(2):
            if self.fail and part == 1:
                raise TTSError("the voice server went away")
            yield PCM(np.full(1000, len(text) + part, np.int16), 16_000)


async def spoken(tts: TTSEngine, text: str) -> list[np.ndarray]:
    return [chunk.samples for chunk in [chunk async for chunk in tts.synthesize(text)]]


async def test_the_same_text_is_synthesised_once_and_replayed_alike():
    engine = CountingTTS()
    tts = RememberingTTS(engine)
    first = await spoken(tts, "Hello, welcome aboard.")
    again = await spoken(tts, " Hello, welcome aboard. ")
    other = await spoken(tts, "Something else.")
    assert engine.calls == ["Hello, welcome aboard.", "Something else."]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True)) and len(again) == 2
    assert not np.array_equal(first[0], other[0])


async def test_an_abandoned_or_failed_synthesis_is_not_kept():
    engine = CountingTTS()
    tts = RememberingTTS(engine)
    async with aclosing(tts.synthesize("Cut after the first chunk.")) as chunks:
        async for _ in chunks:
            break  # an interrupt: the rest is never taken
    await spoken(tts, "Cut after the first chunk.")
    assert len(engine.calls) == 2

    failing = RememberingTTS(CountingTTS(fail=True))
    for _ in range(2):
        with pytest.raises(TTSError):
            await spoken(failing, "Fails half way.")
    assert len(failing.engine.calls) == 2


async def test_the_least_recently_used_speech_leaves_first_when_over_budget():
    engine = CountingTTS()
    tts = RememberingTTS(engine, budget_bytes=2 * 4000)  # two texts of 2 × 1 000 int16 samples
    for text in ["one", "two", "one", "three", "one", "two"]:
        await spoken(tts, text)
    # "one" was used again before "three" came, so "two" left; "one" stayed
    assert engine.calls == ["one", "two", "three", "two"]


async def test_sessions_of_a_voice_share_what_the_pool_synthesised(tmp_path):
    engine = CountingTTS()
    pool = model_pool(
        device="cpu", resolve=lambda kind, name: (lambda voice: engine) if kind == "tts" else MouthWarpLipSync
    )
    bundle = write_astronaut_bundle(tmp_path / "avatar", frame_count=1)
    leases = [
        await pool.lease(tts_engine="counting", voice=VoiceSettings(), lipsync_engine="default", avatar_path=bundle)
        for _ in range(3)
    ]
    try:
        for lease in leases:
            await spoken(lease.tts, "Good morning, I am your guide.")
        assert engine.calls == ["Good morning, I am your guide."]
    finally:
        for lease in leases:
            lease.release()
        await pool.aclose()
