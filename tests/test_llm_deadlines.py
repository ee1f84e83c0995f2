"""A slow LLM that drips tokens cannot keep an answer alive for ever (issue 10, Low 13): an idle timeout between
deltas and a total answer deadline end it with LLMError(timeout), which the conversation turns into the spoken
apology. Against a real local OpenAI-compatible server that sends one word at a time."""

from __future__ import annotations

import pytest

from realtime.conversation.apology import apology
from realtime.conversation.history import History
from realtime.engines.llm.base import LLMError, LLMErrorCode
from realtime.engines.llm.openai_compat import OpenAICompatibleLLM
from testkit.defaults import llm_settings
from tests.fixtures.chat_server import ChatServer
from tests.test_conversation_parts import answer_with


def _engine(server: ChatServer, **limits: float) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(llm_settings(base_url=server.base_url, timeout_s=5, outbound=server.policy, **limits))


async def _drain(engine: OpenAICompatibleLLM) -> list[str]:
    return [delta async for delta in engine.stream([{"role": "user", "content": "Hi"}])]


@pytest.mark.parametrize(
    ("trickle_s", "limits", "message", "most_words"),
    [
        (0.1, {"answer_deadline_s": 0.6, "idle_timeout_s": 5.0}, "did not finish its answer in 0.6 s", 12),
        (0.8, {"answer_deadline_s": 60.0, "idle_timeout_s": 0.3}, "sent nothing for 0.3 s", 2),
    ],
)
async def test_a_dripping_answer_is_cut_by_its_deadline_or_idle_timeout(trickle_s, limits, message, most_words):
    async with ChatServer(trickle_s=trickle_s) as server:
        server.plan = ["trickle"]
        engine = _engine(server, **limits)
        with pytest.raises(LLMError) as ended:
            await _drain(engine)
        await engine.aclose()
    assert ended.value.code == LLMErrorCode.TIMEOUT and message in ended.value.message
    # a protocol deadline, not a speed target: the cut comes at the configured limit (0.6 s: ~6 words at one per
    # 0.1 s; 0.3 s: after the first word), not when the 200-word answer would end by itself. Counted in words the
    # server wrote, on the same event loop as the client's timers, so a loaded machine slows both alike.
    assert 1 <= server.words_sent <= most_words, server.words_sent


async def test_the_cut_answer_ends_in_the_spoken_apology():
    async with ChatServer(trickle_s=0.1) as server:
        server.plan = ["trickle"]
        history = History()
        history.add_user("Tell me a long story.")
        writer, errors = await answer_with(_engine(server, answer_deadline_s=0.5), history)
    assert [code for code, _ in errors] == ["llm_timeout"]
    assert writer.text.strip().endswith(apology("en"))


async def test_a_steady_answer_within_the_limits_is_whole():
    async with ChatServer(answer="All good now.") as server:
        assert "".join(await _drain(_engine(server, idle_timeout_s=2, answer_deadline_s=10))) == "All good now."
