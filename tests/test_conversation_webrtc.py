"""End to end: an aiortc client speaks to the real consumer over WebRTC and the avatar answers with voice and lips.

The client's mic is a track that plays Piper speech at real time (48 kHz,
20 ms frames); the role's engines are pocketsphinx, the echo LLM (or a local
OpenAI-compatible server), Piper and the default lip-sync. What comes back is
checked as the client received it, and what was stored is read from the database.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async

from avatars_app.models import Prompt, Role
from realtime.conversation.apology import apology
from sessions_app.client_errors import public_message
from sessions_app.models import Message
from testkit.peers import MOUTH_TRAVEL, mouth_openings, rms
from testkit.speech import word_error_rate
from testkit.voice import TalkingPeer
from testkit.waits import until
from tests.fixtures.chat_server import ChatServer
from tests.fixtures.live import EventLog, live_session, session_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_ice"), pytest.mark.slow]

QUESTION = "What is the weather like in Paris today?"
WER_BOUND = 0.4
VOICED_RMS = 500  # int16 RMS of a received 20 ms packet that carries speech (silence decodes near 0)


@dataclass
class Call:
    live: object
    communicator: object
    log: EventLog
    client: TalkingPeer

    async def hang_up(self) -> None:
        await self.client.close()
        await self.log.stop()
        await self.communicator.disconnect(code=1001)


async def start_call(session_id, raw_key: str) -> Call:
    """Connect over the WebSocket, make the WebRTC call with a talking client, and wait until media flows."""
    communicator = session_communicator(session_id, api_key=raw_key)
    connected, _ = await communicator.connect()
    assert connected
    log = EventLog(communicator)
    await log.wait_for("state")
    client = TalkingPeer()
    await communicator.send_json_to({"type": "offer", "sdp": await client.offer()})
    _, answer = await log.wait_for("answer")
    await client.accept(answer["sdp"])
    async with asyncio.timeout(10):
        while len(client.video) < 5 or len(client.audio) < 10:
            await asyncio.sleep(0.02)
    return Call(live_session(session_id), communicator, log, client)


async def test_a_question_spoken_over_webrtc_is_answered_with_voice_and_lips(chat_session, world_a, speech):
    call = await start_call(chat_session.pk, world_a.raw_key)
    spoken = await call.client.say(speech(QUESTION, lead_s=0.5, tail_s=0.8))
    _, final = await call.log.wait_for("transcript", timeout=20, final=True)
    _, timings = await call.log.wait_for("timings", timeout=30)
    played = len(call.client.audio)
    await until(lambda: len(call.client.audio) > played + 15, what="0.3 s more of the call")  # the tail in transit
    await call.hang_up()

    # the user's words went to the page live, then final, and were recognised
    transcripts = call.log.of_type("transcript")
    assert [t["final"] for t in transcripts].index(True) >= 3  # several partials first
    assert word_error_rate(QUESTION, final["text"]) <= WER_BOUND
    # the answer came back as speech and as a moving mouth, after the question ended
    reply_audio = [f for f in call.client.audio if f.arrived > spoken.voice_end and rms(f.data) > VOICED_RMS]
    openings = mouth_openings(f.data for f in call.client.video if f.arrived > spoken.voice_end)
    assert len(reply_audio) > 50  # over a second of voice
    assert openings and max(openings) - min(openings) > MOUTH_TRAVEL  # and lips that close and part
    assert all(rms(f.data) < 30 for f in call.client.audio if f.arrived < spoken.voice_end)  # silent while asked
    first_audio = reply_audio[0].arrived - spoken.voice_end
    # how soon is bench.conversation's number (voice end → first audio packet); here it only has to come, and did
    print(f"voice end → first reply audio at the client: {first_audio * 1000:.0f} ms; timings {timings}")

    user, answer = await database_sync_to_async(lambda: list(Message.objects.filter(session=chat_session)))()
    assert (user.speaker, user.text, user.asr_ms) == ("user", final["text"], timings["asr_ms"])
    assert answer.speaker == "assistant" and answer.pk == timings["message_id"] == final["message_id"] + 1
    assert answer.text == user.text and not answer.interrupted and not timings["interrupted"]
    stored = [answer.asr_ms, answer.llm_first_token_ms, answer.tts_first_audio_ms, answer.first_frame_ms]
    sent = [timings[k] for k in ("asr_ms", "llm_first_token_ms", "tts_first_audio_ms", "first_frame_ms")]
    assert stored == sent and answer.total_ms == timings["total_ms"]
    assert stored == sorted(stored) and stored[-1] < answer.total_ms  # each stage after the one before


async def test_a_refused_llm_key_gets_an_apology_and_the_page_hears_why(chat_session, world_a, speech, settings):
    async with ChatServer() as server:
        server.plan = ["unauthorized"]
        settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": list(server.policy.allow)}

        @database_sync_to_async
        def configure_role() -> None:
            role = Role.objects.get(pk=chat_session.role_id)
            role.prompt = Prompt.objects.create(tenant=role.tenant, name="Astro", system_text="You are the astronaut.")
            role.llm_engine, role.llm_base_url, role.llm_model = "openai", server.base_url, "qwen-plus"
            role.llm_api_key, role.temperature = "sk-wrong", 0.2
            role.save()

        await configure_role()
        call = await start_call(chat_session.pk, world_a.raw_key)
        await call.client.say(speech(QUESTION, lead_s=0.3, tail_s=0.6))
        _, error = await call.log.wait_for("error", timeout=20)
        _, subtitle = await call.log.wait_for("subtitle", timeout=20)
        _, timings = await call.log.wait_for("timings", timeout=20)
        await call.communicator.send_json_to({"type": "say", "text": "I am still here."})  # the session goes on
        await call.log.wait_for("subtitle", timeout=20, text="I am still here.")
        await call.hang_up()

    # Why, in the platform's own words: the server's answer body stays in the server log.
    assert error["code"] == "llm_unauthorized" and error["message"] == public_message(
        "llm_unauthorized", settings.LANGUAGE_CODE
    )
    assert "Incorrect API key" not in json.dumps([event for _, event in call.log.events])
    assert subtitle["text"] == apology("en") and subtitle["message_id"] == timings["message_id"]
    [request] = server.requests
    assert request["headers"]["Authorization"] == "Bearer sk-wrong"
    body = request["body"]
    assert (body["model"], body["temperature"], body["user"]) == ("qwen-plus", 0.2, str(chat_session.pk))
    assert body["messages"][0] == {"role": "system", "content": "You are the astronaut."}
    assert body["messages"][1]["role"] == "user" and word_error_rate(QUESTION, body["messages"][1]["content"]) <= 0.4
    answer = await database_sync_to_async(Message.objects.get)(pk=timings["message_id"])
    assert answer.text == apology("en") and not answer.interrupted and answer.llm_first_token_ms is None
