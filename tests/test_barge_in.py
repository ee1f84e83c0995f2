"""Barge-in: the user's speech, the page's interrupt button and the REST interrupt cut the avatar short.

The first tests hear a live session directly through its mic track, at real
time (barge-in is about timing); the last ones go through the real consumer
over WebRTC with an aiortc client that speaks.

Outcomes never hang on how well the ASR heard a sentence (that is
``test_asr_engines``' and ``bench.voice_input``'s job): an answer is checked
against the transcript its turn produced. Nor on how long a fixed sleep lasted
under load: an interrupt waits for a subtitle event, and the barge-in latency
is read in the mic's media time: how much of the user's audio the session had heard when it cut.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from avatars_app.models import Role
from realtime.conversation import BargeIn, TalkMode
from sessions_app.models import Message
from testkit.defaults import conversation_settings, llm_settings
from tests.fixtures.chat_server import ChatServer
from tests.fixtures.live import rest_client
from tests.test_conversation_webrtc import Call, start_call

pytestmark = pytest.mark.slow

LONG = (
    "Good morning, and welcome to the station. I look after the air, the water and the power of this module, "
    "one system after another, every single day."
)
BREAK_IN = "Please turn off the lights."
QUESTION = "What is the weather like in Paris today?"
BARGE_IN_S = 0.7  # speech start → cut: the VAD's minimum speech (250 ms) + a window + the interrupt, with slack


async def speaking(session, message_id: int, sentences: int = 1) -> None:
    """Wait until ``sentences`` sentences of the message have gone on air."""
    async with asyncio.timeout(20):
        while sum(mid == message_id for _, mid in session.events.of("subtitle")) < sentences:
            await session.events.wait_for("subtitle", lambda text, mid: mid == message_id)
            await asyncio.sleep(0.02)


def final_transcripts(events) -> list[str]:
    return [text for text, final, _ in events.of("transcript") if final and text]


async def test_speech_while_the_avatar_talks_cuts_it_within_the_vads_minimum_speech(talk, speech):
    session = await talk(conversation_settings(), speed=1.0)
    heard_at_cut: list[float] = []  # how far into the mic's audio the session had listened when it cut
    cut = session.live.interrupt

    async def interrupt() -> None:
        heard_at_cut.append(session.mic.read_s)
        await cut()

    session.live.interrupt = interrupt
    await session.live.say(LONG, 50)
    await speaking(session, 50)
    spoken = session.mic.say(speech(BREAK_IN, lead_s=0.3, tail_s=0.8))
    _, timings = await session.events.wait_for("finished", lambda mid, t: mid == 50, timeout=10)
    # Cut short (not at the end of the answer), and promptly in the mic's own media time: the listener reads the
    # mic one chunk after another, so a loaded machine reads it later but cuts after the same audio.
    assert timings.interrupted and LONG.startswith(timings.text) and len(timings.text) < len(LONG)
    assert len(heard_at_cut) == 1, heard_at_cut
    latency = heard_at_cut[0] - (spoken.started_s + spoken.utterance.speech_start_s)
    print(f"\nbarge-in: cut after {latency * 1000:.0f} ms of the user's speech (mic media time)")
    assert 0 < latency < BARGE_IN_S

    _, answer = await session.events.wait_for("finished", lambda mid, t: mid == 2)
    assert final_transcripts(session.events) == [answer.text] and not answer.interrupted  # the echo of the turn
    assert session.live.conversation.history.messages()[0] == {"role": "assistant", "content": timings.text}


async def test_under_push_to_talk_barge_in_only_held_speech_cuts_the_avatar(talk, speech):
    session = await talk(conversation_settings(barge_in=BargeIn.PUSH_TO_TALK), speed=1.0)
    await session.live.say(LONG, 51)
    await speaking(session, 51)
    await session.hear(speech(BREAK_IN, lead_s=0.2, tail_s=0.6))  # hands-free: the avatar keeps the floor
    assert session.events.finished(51) is None and session.live.state == "speaking"
    assert session.events.turns == [] and session.events.of("transcript") == []

    session.live.set_talk_mode(TalkMode.PUSH)
    session.live.set_talking(True)
    await session.hear(speech(BREAK_IN, lead_s=0.2, tail_s=0.6))
    session.live.set_talking(False)
    _, timings = await session.events.wait_for("finished", lambda mid, t: mid == 51)
    await session.events.wait_for("transcript", lambda text, final, mid: final)  # the turn is stored when heard
    assert timings.interrupted and len(session.events.turns) == 1


async def test_push_to_talk_ignores_speech_unless_the_button_is_held(talk, speech):
    session = await talk(conversation_settings())
    session.live.set_talk_mode(TalkMode.PUSH)
    await session.hear(speech(QUESTION, lead_s=0.3, tail_s=0.6))  # the gate judges audio as it arrives

    session.live.set_talking(True)
    await session.hear(speech(QUESTION, lead_s=0.3, tail_s=0.6))
    session.live.set_talking(False)
    _, timings = await session.events.wait_for("finished")
    # The mic's audio is heard in order: had the speech without the button been taken, its turn would be here too.
    assert len(session.events.turns) == 1 and final_transcripts(session.events) == [timings.text]
    assert [state for (state,) in session.events.of("state")].count("listening") == 1


async def test_an_interrupt_cancels_the_llm_stream_and_keeps_what_was_said(talk, speech):
    async with ChatServer() as server:
        server.plan = ["trickle"]
        llm = llm_settings(base_url=server.base_url, outbound=server.policy)
        session = await talk(conversation_settings(llm_engine="openai", llm=llm))
        await session.hear(speech(QUESTION, lead_s=0.3, tail_s=0.6))
        # The LLM's answer, whatever its id: a loaded machine's recogniser may make a turn of its own (and an
        # apology for it) out of part of the question first.
        _, answer = await session.events.wait_for("subtitle", lambda text, mid: text.startswith("Word 0,"))
        await speaking(session, answer, sentences=2)  # the first clause went on air whole
        await session.live.interrupt()
        _, timings = await session.events.wait_for("finished", lambda mid, t: mid == answer)
        await asyncio.wait_for(server.dropped.wait(), 2)  # the request was closed, not left streaming
        assert timings.interrupted and timings.text.startswith("Word 0,")
        full = " ".join(f"Word {n}," for n in range(200))
        assert full.startswith(timings.text) and len(timings.text) < 60
        # Nothing of the cut answer reaches the air later: a message said after it plays, and nothing else does.
        subtitles = len(session.events.of("subtitle"))
        await session.live.say("Next.", 60)
        await session.events.wait_for("finished", lambda mid, t: mid == 60)
        assert [mid for _, mid in session.events.of("subtitle")[subtitles:]] == [60]


# --- over WebRTC, through the consumer ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_ice")
async def test_a_second_utterance_over_webrtc_interrupts_the_answer(chat_session, world_a, speech):
    call: Call = await start_call(chat_session.pk, world_a.raw_key)
    first = "Please turn off the lights in the kitchen before you go to bed."
    await call.client.say(speech(first, lead_s=0.3, tail_s=0.4))
    _, transcript = await call.log.wait_for("transcript", timeout=20, final=True)
    _, subtitle = await call.log.wait_for("subtitle", timeout=20)
    await call.client.say(speech(BREAK_IN, lead_s=0.2, tail_s=0.8))
    _, cut = await call.log.wait_for("timings", timeout=10, message_id=subtitle["message_id"])
    async with asyncio.timeout(20):
        while len(finals := [e for e in call.log.of_type("transcript") if e["final"]]) < 2:
            await asyncio.sleep(0.05)
    answer = finals[1]
    _, second = await call.log.wait_for("timings", timeout=20, interrupted=False)
    await call.hang_up()

    rows = await database_sync_to_async(lambda: list(Message.objects.filter(session=chat_session)))()
    assert [row.speaker for row in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[0].text == transcript["text"] and rows[1].pk == cut["message_id"]
    assert cut["interrupted"] and rows[1].interrupted
    assert rows[1].text and rows[0].text.startswith(rows[1].text) and len(rows[1].text) < len(rows[0].text)
    assert rows[2].text and rows[3].text == rows[2].text  # the answer echoes the second turn
    assert rows[3].pk == second["message_id"] and not rows[3].interrupted and rows[3].first_frame_ms
    assert answer["message_id"] == rows[2].pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_ice")
async def test_push_to_talk_over_the_websocket(chat_session, world_a, speech):
    call = await start_call(chat_session.pk, world_a.raw_key)
    await call.communicator.send_json_to({"type": "mode", "talk": "push"})
    await call.client.say(speech(QUESTION, lead_s=0.3, tail_s=0.6))  # not held: ignored (one user row, below)

    await call.communicator.send_json_to({"type": "talk", "on": True})
    await call.client.say(speech(QUESTION, lead_s=0.3, tail_s=0.6))
    await call.communicator.send_json_to({"type": "talk", "on": False})
    _, final = await call.log.wait_for("transcript", timeout=20, final=True)
    _, answered = await call.log.wait_for("timings", timeout=20)
    await call.communicator.send_json_to({"type": "mode", "talk": "walkie-talkie"})
    _, error = await call.log.wait_for("error")
    await call.hang_up()
    assert final["text"] and answered["message_id"] > final["message_id"] and error["code"] == "bad_message"
    assert await database_sync_to_async(Message.objects.filter(session=chat_session, speaker="user").count)() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("loopback_ice")
async def test_the_rest_interrupt_cancels_the_llm_stream(chat_session, world_a, speech, settings):
    async with ChatServer() as server:
        server.plan = ["trickle"]
        settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": list(server.policy.allow)}
        await database_sync_to_async(Role.objects.filter(pk=chat_session.role_id).update)(
            llm_engine="openai", llm_base_url=server.base_url
        )
        call = await start_call(chat_session.pk, world_a.raw_key)
        await call.client.say(speech(QUESTION, lead_s=0.3, tail_s=0.6))
        _, subtitle = await call.log.wait_for("subtitle", timeout=20)
        async with asyncio.timeout(20):  # the first clause went on air whole: the next one is on air
            while len(call.log.of_type("subtitle")) < 2:
                await call.log.wait_for("subtitle", timeout=20)
                await asyncio.sleep(0.02)
        async with rest_client(world_a.raw_key) as client:
            response = await client.post(f"/api/v1/sessions/{chat_session.pk}/interrupt/")
        assert response.status_code == 202
        _, timings = await call.log.wait_for("timings", timeout=5)
        await asyncio.wait_for(server.dropped.wait(), 2)
        await call.hang_up()
    message = await database_sync_to_async(Message.objects.get)(pk=subtitle["message_id"])
    assert message.interrupted and timings["interrupted"] and message.text.startswith("Word 0,")
    assert len(message.text) < 80
