"""Cloud speech recognition against local servers on 127.0.0.1 that speak each protocol: OpenAI-compatible
transcription (one WAV per turn) and DashScope's real-time Paraformer WebSocket (streaming). Answers, errors,
stalls and closes; the outbound policy in front of both; and in a live conversation a failure is apologised for
aloud while the session goes on."""

from __future__ import annotations

import asyncio
import io
import re
import wave

import numpy as np
import pytest

from realtime.conversation.apology import unheard_apology
from realtime.engines.asr.base import ASRError, CloudASRSettings
from realtime.engines.asr.dashscope import FRAME_SAMPLES, DashScopeRealtimeASR
from realtime.engines.asr.openai_transcribe import OpenAITranscriptionASR
from realtime.engines.base import EngineUnavailable
from realtime.engines.registry import engine_class
from realtime.net.outbound import OutboundPolicy
from testkit.asr_servers import SENTENCES, DashScopeServer, TranscriptionServer
from testkit.defaults import cloud_asr_settings, conversation_settings
from testkit.outbound import policy_allowing

TIMEOUT_S = 0.5
# In a live session the recogniser shares the loop with the session's own work: the turn that is meant to succeed
# must not time out because a loaded machine was slow, so the stall there is judged on a longer deadline.
LIVE_TIMEOUT_S = 3.0
# A stall must end at its configured deadline, not never. The error's message names the deadline that fired; this outer
# limit (that deadline plus slack no loaded machine needs) only turns a hang into a failure instead of a stuck run.
HANG_LIMIT_S = TIMEOUT_S + 10


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)


def mic_chunks(samples: np.ndarray) -> list[np.ndarray]:
    """20-ms pieces, as the session's mic path hands them to the engine."""
    return [samples[at : at + 320] for at in range(0, len(samples), 320)]


def cloud(url: str, **overrides) -> CloudASRSettings:
    values = {"base_url": url, "api_key": "sk-test", "language": "zh-CN", "timeout_s": TIMEOUT_S}
    return cloud_asr_settings(**{**values, "outbound": policy_allowing(url), **overrides})


async def recognise(engine, samples: np.ndarray) -> tuple[list[str], str]:
    engine.start()
    partials = [p for chunk in mic_chunks(samples) if (p := await engine.accept(chunk))]
    return partials, await engine.finish()


def test_both_engines_are_chosen_by_name():
    assert engine_class("asr", "openai_transcribe") is OpenAITranscriptionASR
    assert engine_class("asr", "dashscope") is DashScopeRealtimeASR


# --- OpenAI-compatible transcription --------------------------------------------------------------------------


async def test_transcription_posts_the_turn_as_one_wav_and_returns_the_text():
    async with TranscriptionServer() as server:
        engine = OpenAITranscriptionASR(cloud(server.base_url, model="sensevoice-small"))
        audio = tone(1.5)
        partials, text = await recognise(engine, audio)
        await engine.aclose()
    assert partials == [] and text == "我听到了1.50秒。"  # stripped; no partials: the protocol has none
    [request] = server.requests
    assert (request["rate"], request["channels"], request["width"]) == (16_000, 1, 2)
    assert request["pcm"] == audio.tobytes()  # the whole turn, in order
    assert request["fields"] == {"model": "sensevoice-small", "response_format": "json", "language": "zh"}
    assert request["headers"]["Authorization"] == "Bearer sk-test" and request["filename"] == "turn.wav"


async def test_a_turn_without_audio_sends_nothing():
    async with TranscriptionServer() as server:
        engine = OpenAITranscriptionASR(cloud(server.base_url))
        engine.start()
        assert await engine.finish() == ""
        await engine.aclose()
    assert server.requests == []


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ("unauthorized", r"HTTP 401: Incorrect API key provided"),
        ("server_error", r"HTTP 500: model overloaded"),
        ("garbage", r"no transcription JSON"),
        ("drop", r"cannot reach"),
        ("stall", rf"within {TIMEOUT_S:g} s"),
    ],
)
async def test_transcription_failures_are_asr_errors_and_the_next_turn_works(plan, reason):
    async with TranscriptionServer() as server:
        server.plan = [plan]
        engine = OpenAITranscriptionASR(cloud(server.base_url))
        async with asyncio.timeout(HANG_LIMIT_S):
            with pytest.raises(ASRError, match=reason):
                await recognise(engine, tone(0.5))
        assert (await recognise(engine, tone(0.25)))[1] == "我听到了0.25秒。"
        await engine.aclose()


async def test_transcription_without_the_allow_list_reaches_nothing():
    async with TranscriptionServer() as server:
        engine = OpenAITranscriptionASR(cloud(server.base_url, outbound=OutboundPolicy()))
        with pytest.raises(ASRError, match=r"outbound policy: .*127\.0\.0\.1.* internal address"):
            await recognise(engine, tone(0.5))
        await engine.aclose()
    assert server.requests == []


def test_transcription_needs_a_base_url():
    with pytest.raises(EngineUnavailable, match="base URL"):
        OpenAITranscriptionASR(cloud_asr_settings())


# --- DashScope real-time Paraformer ---------------------------------------------------------------------------


async def test_dashscope_streams_the_turn_and_returns_partial_then_final_sentences():
    async with DashScopeServer() as server:
        engine = DashScopeRealtimeASR(cloud(server.url, model="paraformer-realtime-v2"))
        audio = tone(2.1)
        partials, text = await recognise(engine, audio)
        [record] = server.connections
        await asyncio.wait_for(record["closed"].wait(), 5)  # the connection is closed at the end of the turn
    # 2.1 s: two whole sentences (0.8 s each) and a third cut short, finished by finish-task
    assert text == "".join(SENTENCES[:3])
    assert partials[0] == SENTENCES[0][:1] and partials[-1].startswith("".join(SENTENCES[:2]))
    assert len(partials) >= 8 and all(partial for partial in partials)
    run, finish = record["messages"]
    assert record["headers"]["authorization"] == "bearer sk-test"
    assert run["header"]["action"] == "run-task" and run["header"]["streaming"] == "duplex"
    assert re.fullmatch(r"[0-9a-f]{32}", run["header"]["task_id"])
    assert run["payload"]["model"] == "paraformer-realtime-v2" and run["payload"]["task"] == "asr"
    assert run["payload"]["parameters"] == {"format": "pcm", "sample_rate": 16_000, "language_hints": ["zh"]}
    assert finish["header"] == {**run["header"], "action": "finish-task"}
    assert record["audio"] == audio.tobytes()  # every sample, in order
    assert max(record["frames"]) == FRAME_SAMPLES * 2  # 100-ms binary frames (the last one shorter)


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ("http_401", r"refused the connection: HTTP 401"),
        ("fail_start", r"task failed: InvalidParameter: unsupported sample_rate"),
        ("fail_mid", r"task failed: ResponseTimeout: internal timeout"),
        ("close_mid", r"closed the connection mid-turn \(close code 1011: internal error\)"),
        ("stall_start", rf"no task-started .* within {TIMEOUT_S:g} s"),
        ("stall_finish", rf"no task-finished .* within {TIMEOUT_S:g} s"),
    ],
)
async def test_dashscope_errors_and_closes_are_asr_errors_and_the_next_turn_works(plan, reason):
    async with DashScopeServer() as server:
        server.plan = [plan]
        engine = DashScopeRealtimeASR(cloud(server.url))
        async with asyncio.timeout(HANG_LIMIT_S):
            with pytest.raises(ASRError, match=reason):
                await recognise(engine, tone(1.0))
        assert (await recognise(engine, tone(1.0)))[1] == "".join(SENTENCES[:2])
        await engine.aclose()
        await asyncio.wait_for(server.connections[0]["closed"].wait(), 5)  # the failed task's socket was closed


async def test_dashscope_without_the_allow_list_reaches_nothing():
    async with DashScopeServer() as server:
        engine = DashScopeRealtimeASR(cloud(server.url, outbound=OutboundPolicy()))
        with pytest.raises(ASRError, match=r"outbound policy: .*internal address"):
            await recognise(engine, tone(0.5))
        await engine.aclose()
    assert server.connections == []


async def test_dashscope_reset_mid_turn_closes_that_task_and_starts_afresh():
    async with DashScopeServer() as server:
        engine = DashScopeRealtimeASR(cloud(server.url))
        engine.start()
        for chunk in mic_chunks(tone(0.5)):
            await engine.accept(chunk)
        engine.reset()  # barge-in cancelled the turn
        assert (await recognise(engine, tone(1.0)))[1] == "".join(SENTENCES[:2])
        await asyncio.wait_for(server.connections[0]["closed"].wait(), 5)
        assert len(server.connections[0]["messages"]) == 1  # abandoned: never finished
        await engine.aclose()


@pytest.mark.parametrize("bad", [cloud_asr_settings(), cloud_asr_settings(api_key="k", base_url="https://x/")])
def test_dashscope_needs_a_key_and_a_websocket_url(bad):
    with pytest.raises(EngineUnavailable, match="DashScope"):
        DashScopeRealtimeASR(bad)


def test_the_wav_the_transcription_engine_sends_is_readable():
    from realtime.engines.asr.openai_transcribe import wav_bytes

    with wave.open(io.BytesIO(wav_bytes(tone(0.1)))) as wav:
        assert (wav.getframerate(), wav.getnframes()) == (16_000, 1600)


# --- in a live conversation: a failed turn is apologised for aloud, and the session goes on -------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["dashscope", "openai_transcribe"])
async def test_a_cloud_failure_is_apologised_for_aloud_and_the_next_turn_is_heard(talk, speech, engine):
    server_class = DashScopeServer if engine == "dashscope" else TranscriptionServer
    async with server_class() as server:
        url = server.url if engine == "dashscope" else server.base_url
        server.plan = ["stall_finish" if engine == "dashscope" else "stall"]
        session = await talk(
            conversation_settings(
                asr_engine=engine, asr_options={"settings": cloud(url, timeout_s=LIVE_TIMEOUT_S)}, language="zh"
            )
        )
        await session.hear(speech("What is the weather like in Paris today?", lead_s=0.5, tail_s=0.8))
        code, reason = await session.events.wait_for("error")
        assert code == "asr_failed" and f"within {LIVE_TIMEOUT_S:g} s" in reason
        _, apologised = await session.events.wait_for("finished")
        assert apologised.text == unheard_apology("zh") and apologised.first_frame_ms is not None

        await session.hear(speech("I would like to book a table for two people tonight.", lead_s=0.3, tail_s=0.8))
        text, _, _ = await session.events.wait_for("transcript", lambda text, final, mid: final and text)
        _, answered = await session.events.wait_for("finished", lambda mid, timings: timings.text == text)
        assert answered.first_frame_ms is not None and not session.live.closed  # the echo LLM says it back
