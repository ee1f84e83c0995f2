"""A live session in conversation, heard directly through its mic track: turns, answers, failures, spoken text.

Piper speech goes in (4× real time: the VAD and ASR only count samples), real
pocketsphinx, silero, Piper and lip-sync run; the LLM is the echo engine or a
local OpenAI-compatible server that fails on request. WebRTC and the consumer
are covered by ``test_conversation_webrtc``.
"""

from __future__ import annotations

import pytest

from realtime.conversation import ConversationSettings
from realtime.conversation.apology import apology, unheard_apology
from realtime.engines.asr.base import ASRError
from realtime.engines.asr.pocketsphinx import PocketsphinxASR
from realtime.engines.tts.base import TTSError
from realtime.engines.tts.piper import PiperTTS
from testkit.defaults import conversation_settings, llm_settings
from testkit.outbound import policy_allowing
from testkit.speech import word_error_rate
from testkit.waits import until
from tests.fixtures.chat_server import ChatServer
from tests.fixtures.processes import free_port

pytestmark = pytest.mark.slow

QUESTION = "What is the weather like in Paris today?"
SECOND = "I would like to book a table for two people tonight."
PROMPT = "You are the astronaut. Answer in one short sentence."
WER_BOUND = 0.4


def openai_role(base_url: str) -> ConversationSettings:
    return conversation_settings(
        llm_engine="openai",
        llm=llm_settings(
            model="qwen-plus",
            base_url=base_url,
            api_key="sk-test",
            temperature=0.3,
            system_prompt=PROMPT,
            timeout_s=0.5,
            outbound=policy_allowing(base_url),
        ),
    )


def answers(talk) -> list[int]:
    """Ids of the answer Messages, in the order their turns were stored (the recorder numbers user, answer)."""
    return [2 * n for n in range(1, len(talk.events.turns) + 1)]


async def test_a_spoken_turn_is_stored_and_answered_with_timings(talk, speech):
    session = await talk(conversation_settings())
    await session.hear(speech(QUESTION, lead_s=0.5, tail_s=1.0))
    user_text, user_final, user_id = await session.events.wait_for("transcript", lambda text, final, mid: final)
    assert user_final and user_id == 1 and word_error_rate(QUESTION, user_text) <= WER_BOUND
    partials = [text for text, final, _ in session.events.of("transcript") if not final]
    assert len(partials) >= 3 and word_error_rate(user_text, partials[-1]) <= 0.3  # live words before the final
    message_id, timings = await session.events.wait_for("finished")
    assert message_id == 2 and session.events.turns[0][0] == user_text
    assert timings.text == user_text and not timings.interrupted  # the echo engine says the user's words back
    assert 0 <= timings.asr_ms <= timings.llm_first_token_ms <= timings.tts_first_audio_ms
    assert timings.tts_first_audio_ms <= timings.first_frame_ms < timings.total_ms
    assert timings.asr_ms == session.events.turns[0][1]
    states = [state for (state,) in session.events.of("state")]
    assert states[:4] == ["listening", "thinking", "speaking", "idle"]
    assert session.live.conversation.history.messages() == [
        {"role": "user", "content": user_text},
        {"role": "assistant", "content": user_text},
    ]


@pytest.mark.parametrize(
    ("failure", "code"),
    [("unauthorized", "unauthorized"), ("unreachable", "unreachable"), ("slow", "timeout"), ("cut", "broken_stream")],
)
async def test_an_llm_failure_is_apologised_for_and_the_conversation_goes_on(talk, speech, failure, code):
    port = free_port()
    server = ChatServer(port=port)
    if failure != "unreachable":
        await server.__aenter__()
        server.plan = [failure]
    try:
        session = await talk(openai_role(f"http://127.0.0.1:{port}/v1"))
        await session.hear(speech(QUESTION, lead_s=0.5, tail_s=0.8))
        error_code, reason = await session.events.wait_for("error")
        assert error_code == f"llm_{code}" and reason
        message_id, timings = await session.events.wait_for("finished")
        assert timings.text == apology("en") and not timings.interrupted  # the cut's "Well, " was never said
        assert (timings.llm_first_token_ms is None) is (failure != "cut")
        assert [text for text, mid in session.events.of("subtitle") if mid == message_id] == [apology("en")]

        if failure == "unreachable":
            await server.__aenter__()  # the server comes back
        await session.hear(speech(SECOND, lead_s=0.3, tail_s=0.8))
        second = await session.events.wait_for("finished", lambda mid, t: mid != message_id)
        assert second[1].text == "All good now." and not second[1].interrupted
        assert second[1].llm_first_token_ms is not None
        body = server.requests[-1]["body"]
        assert body["model"] == "qwen-plus" and body["temperature"] == 0.3 and body["stream"] is True
        assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-test"
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
        assert body["messages"][0]["content"] == PROMPT and body["messages"][2]["content"] == apology("en")
        assert word_error_rate(SECOND, body["messages"][3]["content"]) <= WER_BOUND
        assert [c for c, _ in session.events.of("error")] == [f"llm_{code}"]  # only the first turn failed
    finally:
        await server.__aexit__()


async def test_an_asr_failure_is_reported_apologised_for_and_the_next_turn_is_heard(talk, speech, monkeypatch):
    accept = PocketsphinxASR.accept
    calls = 0

    async def fails_once(self, pcm16k):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ASRError("pocketsphinx failed: decoder crashed")
        return await accept(self, pcm16k)

    monkeypatch.setattr(PocketsphinxASR, "accept", fails_once)
    session = await talk(conversation_settings())
    await session.hear(speech(QUESTION, lead_s=0.5, tail_s=0.8))
    assert await session.events.wait_for("error") == ("asr_failed", "pocketsphinx failed: decoder crashed")
    await session.events.wait_for("transcript", lambda text, final, mid: final and text == "")
    # the lost turn is stored without words and the avatar says it did not hear; nothing reaches the LLM
    _, apologised = await session.events.wait_for("finished")
    assert apologised.text == unheard_apology("en") and not apologised.interrupted
    assert [text for text, _ in session.events.turns] == [""]
    assert session.live.conversation.history.messages() == []

    await session.hear(speech(SECOND, lead_s=0.3, tail_s=0.8))
    _, timings = await session.events.wait_for("finished", lambda mid, timings: timings.text != apologised.text)
    assert word_error_rate(SECOND, timings.text) <= WER_BOUND and len(session.events.turns) == 2


async def test_without_its_asr_model_the_session_says_why_and_still_talks(talk):
    session = await talk(
        conversation_settings(asr_engine="funasr", asr_options={"model_dir": "", "punc_model_dir": ""})
    )
    code, reason = await session.events.wait_for("error")
    assert code == "asr_unavailable" and "FUNASR_MODEL_DIR" in reason and "download_funasr_models" in reason
    await session.live.say("Hello there.", 41)
    _, timings = await session.events.wait_for("finished")
    assert timings.text == "Hello there." and timings.first_frame_ms is not None


async def test_a_failing_voice_still_shows_every_subtitle(talk, monkeypatch):
    async def broken(self, text):
        raise TTSError("voice server down")
        yield  # an async generator, like the real one

    monkeypatch.setattr(PiperTTS, "synthesize", broken)
    session = await talk(conversation_settings())
    # Words no other test speaks: speech the process's pool already made for the voice is replayed from memory.
    await session.live.say("The voice is broken now. Is anyone hearing this?", 42)
    _, timings = await session.events.wait_for("finished")
    subtitles = [text for text, _ in session.events.of("subtitle")]
    assert subtitles == ["The voice is broken now.", "Is anyone hearing this?"]
    assert [code for code, _ in session.events.of("error")] == ["tts_failed", "tts_failed"]
    assert timings.text == "The voice is broken now. Is anyone hearing this?" and not timings.interrupted
    assert timings.first_frame_ms is None


async def test_an_interrupted_message_keeps_only_the_words_that_went_on_air(talk):
    session = await talk(conversation_settings())
    first = "This first sentence is spoken in full. "
    second = "The second one is a good deal longer than the first, and it is cut somewhere in its middle. "
    text = first + second + "The third is never heard."
    await session.live.say(text, 43)
    # The second sentence sounds about 5.5 s: cut once a third of it is on air by the session's own clock (not a
    # fixed time after its subtitle event, which a loaded machine delivers late), with seconds of it still to come.
    await until(
        lambda: session.live.ledger.heard(43).startswith(first + "The second one is a good deal"),
        timeout_s=20,
        what="a third of the second sentence on air",
    )
    await session.live.interrupt()
    _, timings = await session.events.wait_for("finished")
    assert timings.interrupted
    assert timings.text.startswith(first + "The second one") and len(timings.text) < len((first + second).strip())
    assert (first + second).startswith(timings.text)  # whole words only
    assert session.live.conversation.history.messages() == [{"role": "assistant", "content": timings.text}]


async def test_another_roles_settings_answer_the_next_turn_and_a_missing_asr_keeps_the_old_one(talk, speech):
    session = await talk(conversation_settings())
    await session.hear(speech(QUESTION, lead_s=0.5, tail_s=0.6))
    _, echoed = await session.events.wait_for("finished")
    async with ChatServer(answer="Hello from the new role.") as server:
        new_role = openai_role(server.base_url)
        missing_asr = {"model_dir": "/nowhere", "punc_model_dir": ""}
        await session.live.conversation.use_settings(
            conversation_settings(llm_engine="openai", llm=new_role.llm, asr_engine="funasr", asr_options=missing_asr)
        )
        code, reason = await session.events.wait_for("error")
        assert code == "asr_unavailable" and "FUNASR_MODEL_DIR" in reason
        await session.hear(speech(SECOND, lead_s=0.3, tail_s=0.6))  # still heard, by pocketsphinx
        _, answer = await session.events.wait_for("finished", lambda mid, t: mid == 4)
    assert answer.text == "Hello from the new role."
    [request] = server.requests
    messages = request["body"]["messages"]
    assert messages[0] == {"role": "system", "content": PROMPT}
    assert messages[2] == {"role": "assistant", "content": echoed.text}  # the conversation so far goes along
    assert word_error_rate(SECOND, messages[3]["content"]) <= WER_BOUND
