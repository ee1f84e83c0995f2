"""Greetings are spoken: when a session's media starts over real WebRTC the role's greeting is said as a stored
assistant message with timings; an empty greeting says nothing; a role switch in place says the new greeting."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from avatars_app.models import Role
from sessions_app.models import Message
from testkit.peers import ReceivingPeer, rms
from tests.fixtures.live import EventLog, make_other_role, session_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_ice")]

GREETING = "Hello, I am the astronaut. 你好！"
VOICED_RMS = 500  # a received 20 ms packet this loud carries speech (silence decodes near 0)


def assistant_messages(session_id) -> list[Message]:
    return list(Message.objects.filter(session_id=session_id, speaker=Message.Speaker.ASSISTANT).order_by("pk"))


async def connect(session_id, raw_key: str) -> tuple[object, EventLog]:
    communicator = session_communicator(session_id, api_key=raw_key)
    assert (await communicator.connect())[0]
    log = EventLog(communicator)
    await log.wait_for("state")
    return communicator, log


async def start_media(communicator, log: EventLog) -> ReceivingPeer:
    client = ReceivingPeer()
    await communicator.send_json_to({"type": "offer", "sdp": await client.offer()})
    _, answer = await log.wait_for("answer")
    await client.accept(answer["sdp"])
    return client


async def hang_up(communicator, log: EventLog, client: ReceivingPeer) -> None:
    await client.close()
    await log.stop()
    await communicator.disconnect(code=1001)


async def test_the_greeting_is_spoken_when_media_starts_and_stored_with_timings(chat_session, world_a, talking_role):
    await database_sync_to_async(Role.objects.filter(pk=talking_role.pk).update)(greeting=f"  {GREETING}\n")
    communicator, log = await connect(chat_session.pk, world_a.raw_key)
    assert await database_sync_to_async(assistant_messages)(chat_session.pk) == []  # no media yet: not said

    client = await start_media(communicator, log)
    _, timings = await log.wait_for("timings", timeout=30)
    assert " ".join(event["text"] for event in log.of_type("subtitle")) == GREETING
    assert not timings["interrupted"]
    [message] = await database_sync_to_async(assistant_messages)(chat_session.pk)
    assert message.pk == timings["message_id"] and message.text == GREETING
    assert 0 < message.tts_first_audio_ms <= message.first_frame_ms < message.total_ms
    # and it was heard: voiced audio arrived over the peer connection
    async with asyncio.timeout(10):
        while sum(rms(frame.data) > VOICED_RMS for frame in client.audio) < 25:
            await asyncio.sleep(0.05)
    await hang_up(communicator, log, client)


async def test_an_empty_greeting_says_nothing(chat_session, world_a):
    communicator, log = await connect(chat_session.pk, world_a.raw_key)
    client = await start_media(communicator, log)
    async with asyncio.timeout(10):
        while len(client.video) < 10:  # media is flowing: a greeting would have been queued by now
            await asyncio.sleep(0.02)
    await communicator.send_json_to({"type": "say", "text": "First words."})
    _, timings = await log.wait_for("timings", timeout=30)
    [message] = await database_sync_to_async(assistant_messages)(chat_session.pk)
    assert message.text == "First words." and message.pk == timings["message_id"]
    assert [event["text"] for event in log.of_type("subtitle")] == ["First words."]
    await hang_up(communicator, log, client)


async def test_switching_role_in_place_says_the_new_roles_greeting(chat_session, world_a, _media_root):
    other = await database_sync_to_async(make_other_role)(world_a, _media_root)
    await database_sync_to_async(Role.objects.filter(pk=other.pk).update)(greeting="Navigator here. 很高兴见到你。")
    communicator, log = await connect(chat_session.pk, world_a.raw_key)
    client = await start_media(communicator, log)
    async with asyncio.timeout(10):
        while len(client.video) < 10:
            await asyncio.sleep(0.02)

    await communicator.send_json_to({"type": "switch_role", "role": other.pk})
    await log.wait_for("role", role=other.pk, timeout=10)
    _, timings = await log.wait_for("timings", timeout=30)
    assert " ".join(event["text"] for event in log.of_type("subtitle")) == "Navigator here. 很高兴见到你。"
    [message] = await database_sync_to_async(assistant_messages)(chat_session.pk)
    assert message.pk == timings["message_id"] and message.text == "Navigator here. 很高兴见到你。"
    assert message.first_frame_ms is not None
    await hang_up(communicator, log, client)
