"""The end of a spoken turn uses both signals: a short silence is enough once the partial transcript reads as a
finished sentence; otherwise the VAD's full silence window is waited out."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from realtime.conversation.listening import ends_sentence
from realtime.engines.tts.base import VoiceSettings
from realtime.session import LiveSession
from realtime.vad import EndOfTurn, TurnDetector
from sessions_app.session_factory import get_pool
from testkit.bundles import write_astronaut_bundle
from testkit.defaults import conversation_settings, session_config
from testkit.voice import Recorder, TalkingPeer

LONG_SILENCE_MS = 2500  # far longer than any pause in the test speech: only the sentence rule can end a turn early
SENTENCE_SILENCE_MS = 150


def vad_decisions() -> tuple[float, float]:
    """How many turns the VAD has ended in this process, and the media seconds from speech end to each decision."""
    sample = REGISTRY.get_sample_value
    labels = {"stage": "vad_decision"}
    return (
        sample("livehuman_stage_latency_seconds_count", labels) or 0.0,
        sample("livehuman_stage_latency_seconds_sum", labels) or 0.0,
    )


@pytest.mark.parametrize(
    ("text", "finished"),
    [
        ("tell me a story about the moon", True),
        ("What is the weather like in Paris today?", True),
        ("今天天气怎么样？", True),
        ("turn on the lights in the", False),
        ("I would like to", False),
        ("and um", False),
        ("今天天气", False),  # unpunctuated CJK: no clue, wait out the window
        ("", False),
    ],
)
def test_which_partials_read_as_a_finished_sentence(text, finished):
    assert ends_sentence(text) is finished


@pytest.mark.parametrize("complete", [True, False])
def test_the_detector_ends_a_finished_sentence_after_the_short_silence(speech, complete):
    utterance = speech("Tell me a story about the moon.", lead_s=0.4, tail_s=1.5)
    detector = TurnDetector(silence_ms=1000, min_speech_ms=250, sentence_silence_ms=SENTENCE_SILENCE_MS)
    ends = [
        event
        for chunk in utterance.chunks()
        for event in detector.feed(chunk, lambda speech_end_s: complete)
        if isinstance(event, EndOfTurn)
    ]
    assert len(ends) == 1
    waited = ends[0].at_s - ends[0].speech_end_s
    if complete:
        assert SENTENCE_SILENCE_MS / 1000 <= waited < 0.5
    else:
        assert waited >= 1.0


@pytest.mark.slow
@pytest.mark.usefixtures("loopback_ice")
async def test_over_webrtc_a_finished_question_is_answered_without_waiting_out_the_silence_window(tmp_path, speech):
    settings = conversation_settings(vad_silence_ms=LONG_SILENCE_MS, vad_sentence_silence_ms=SENTENCE_SILENCE_MS)
    config = session_config(
        session_id="turn-end",
        role_id=1,
        role_name="Astronaut",
        fps=25,
        avatar_path=write_astronaut_bundle(tmp_path / "still", frame_count=1),
        lipsync_engine="default",
        tts_engine="piper",
        voice=VoiceSettings(),
        conversation=settings,
    )
    events = Recorder()
    live = await LiveSession.open(config, get_pool(), events)
    client = TalkingPeer()
    try:
        await client.accept(await live.accept_offer(await client.offer()))
        async with asyncio.timeout(20):
            while len(client.audio) < 10 or live.conversation.listener is None:
                await asyncio.sleep(0.02)
        decisions = vad_decisions()
        await client.say(speech("Tell me a story about the moon.", lead_s=0.4, tail_s=3.0))
        await events.wait_for("transcript", lambda text, final, message_id: final and text, timeout=20)
        assert "story" in events.turns[0][0]
        # The turn ended before the 2.5 s window would have ended it, counted in the mic's own media time (the
        # VAD's stream: end of speech → its decision), which a loaded machine reads later but not differently.
        count, seconds = (now - before for now, before in zip(vad_decisions(), decisions, strict=True))
        assert count == 1 and seconds < LONG_SILENCE_MS / 1000, (count, seconds)
    finally:
        await client.close()
        await live.close()
