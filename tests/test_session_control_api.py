"""REST say / interrupt / state reach the session's owner (its consumer) through the channel layer."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from livehuman_site.conf import livehuman_settings
from sessions_app.models import ChatSession, Message
from tests.fixtures.live import TOP_OF_LADDER, EventLog, live_session, rest_client, session_communicator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def owned(chat_session, world_a):
    """The session, connected over its WebSocket (so this process owns it), and its event log."""
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    assert (await communicator.connect())[0]
    log = EventLog(communicator)
    await log.wait_for("state")
    yield chat_session, log
    await log.stop()
    await communicator.disconnect()


async def test_say_is_spoken_by_the_owner_and_state_reports_it(owned, world_a):
    session, log = owned
    url = f"/api/v1/sessions/{session.pk}"
    async with rest_client(world_a.raw_key) as client:
        response = await client.post(f"{url}/say/", json={"text": "Good morning. The weather is fine today."})
        assert response.status_code == 202
        _, subtitle = await log.wait_for("subtitle", timeout=20)
        assert subtitle["text"] == "Good morning."
        await log.wait_for("state", state="speaking")

        state = await client.get(f"{url}/state/")
        assert state.status_code == 200
        assert state.json() == {
            "state": "speaking",
            "role": session.role_id,
            "fps": 25,
            "speaking_text": state.json()["speaking_text"],
            "rtmp": None,  # no RTMP stream started
            "degrade": TOP_OF_LADDER,
        }
        assert state.json()["speaking_text"] in {"Good morning.", "The weather is fine today."}

        _, timings = await log.wait_for("timings", timeout=20)
        assert timings["message_id"] == subtitle["message_id"]
        assert (await client.get(f"{url}/state/")).json()["state"] == "idle"
    message = await database_sync_to_async(Message.objects.get)(pk=subtitle["message_id"])
    assert message.text == "Good morning. The weather is fine today." and not message.interrupted


async def test_interrupt_cuts_the_owner_short(owned, world_a):
    session, log = owned
    url = f"/api/v1/sessions/{session.pk}"
    text = " ".join(f"Sentence {n} is rather long, so that it takes a while to say." for n in range(5))
    async with rest_client(world_a.raw_key) as client:
        assert (await client.post(f"{url}/say/", json={"text": text})).status_code == 202
        await log.wait_for("state", state="speaking", timeout=20)
        assert (await client.post(f"{url}/interrupt/")).status_code == 202
        _, timings = await log.wait_for("timings", timeout=5)
        assert (await client.get(f"{url}/state/")).json()["state"] == "idle"
        # say with interrupt=true replaces whatever is queued
        assert (await client.post(f"{url}/say/", json={"text": "Short one.", "interrupt": True})).status_code == 202
        await log.wait_for("subtitle", text="Short one.", timeout=20)
    message = await database_sync_to_async(Message.objects.get)(pk=timings["message_id"])
    assert message.interrupted
    assert len(log.of_type("subtitle")) < 1 + 5  # the long answer did not play out


async def test_a_session_nobody_owns_reports_its_stored_state_and_refuses_say(chat_session, world_a):
    url = f"/api/v1/sessions/{chat_session.pk}"
    async with rest_client(world_a.raw_key) as client:
        state = await client.get(f"{url}/state/")
        assert state.json() == {
            "state": "created",
            "role": chat_session.role_id,
            "fps": 25,
            "speaking_text": "",
            "rtmp": None,
        }
        refused = await client.post(f"{url}/say/", json={"text": "Anyone there?"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "not_live"
        assert (await client.post(f"{url}/interrupt/")).status_code == 409


async def test_a_say_to_a_session_whose_owner_is_gone_answers_not_live_at_the_reply_timeout(chat_session, world_a):
    """The row says connected, but the worker that owned it is gone: nobody answers, so nothing was said."""
    await database_sync_to_async(ChatSession.objects.filter(pk=chat_session.pk).update)(state="connected")
    loop = asyncio.get_running_loop()
    async with rest_client(world_a.raw_key) as client:
        started = loop.time()
        refused = await client.post(f"/api/v1/sessions/{chat_session.pk}/say", json={"text": "Anyone there?"})
        took_s = loop.time() - started
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_live"
    # a protocol deadline, not a speed target: the configured reply timeout (1 s) answered, not a hang or a longer
    # wait; the slack is for a loaded machine
    assert took_s < livehuman_settings.SESSION_REPLY_TIMEOUT_S + 2
    assert not await database_sync_to_async(Message.objects.filter(session=chat_session).exists)()


async def test_a_say_while_busy_is_refused_to_the_rest_caller(owned, world_a):
    session, log = owned
    too_much = "Hi there. " * 300  # more sentences than the pipeline queues (3000 characters: under the limit)
    async with rest_client(world_a.raw_key) as client:
        refused = await client.post(f"/api/v1/sessions/{session.pk}/say", json={"text": too_much})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "busy"
        assert (await client.post(f"/api/v1/sessions/{session.pk}/say", json={"text": "Fine."})).status_code == 202
    await log.wait_for("subtitle", text="Fine.", timeout=20)
    assert not log.of_type("error")  # the refusal went to the caller, not to the page
    texts = await database_sync_to_async(list)(Message.objects.filter(session=session).values_list("text", flat=True))
    assert texts == ["Fine."]  # the refused say left no row


async def test_say_and_interrupt_work_with_and_without_the_trailing_slash(owned, world_a):
    session, log = owned
    url = f"/api/v1/sessions/{session.pk}"
    async with rest_client(world_a.raw_key) as client:
        assert (await client.post(f"{url}/say", json={"text": "No slash."})).status_code == 202
        await log.wait_for("subtitle", text="No slash.", timeout=20)
        assert (await client.post(f"{url}/interrupt")).status_code == 202
        assert (await client.post(f"{url}/interrupt/")).status_code == 202
        assert (await client.get(f"{url}/state")).json()["role"] == session.role_id


async def test_a_stale_owner_falls_back_to_the_stored_state(chat_session, world_a, settings):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "SESSION_REPLY_TIMEOUT_S": 0.2}
    await database_sync_to_async(ChatSession.objects.filter(pk=chat_session.pk).update)(state="connected")
    async with rest_client(world_a.raw_key) as client:
        state = await client.get(f"/api/v1/sessions/{chat_session.pk}/state/")
    assert state.json()["state"] == "connected"  # the worker that owned it is gone: nobody answered in time


async def test_other_tenants_cannot_control_the_session(owned, world_b):
    session, log = owned
    async with rest_client(world_b.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{session.pk}/say/", json={"text": "Hijack!"})
        assert response.status_code == 404
        assert (await client.get(f"/api/v1/sessions/{session.pk}/state/")).status_code == 404
    assert not log.of_type("subtitle")


async def test_say_validates_its_body(owned, world_a):
    session, _ = owned
    async with rest_client(world_a.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{session.pk}/say/", json={"text": "  "})
    assert response.status_code == 400
    assert "text" in response.json()["error"]["fields"]


async def test_end_closes_the_live_connection_on_its_owner(owned, world_a):
    from sessions_app.live_sessions import live_sessions

    session, log = owned
    assert live_session(session.pk) is not None
    async with rest_client(world_a.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{session.pk}/end/")
    assert response.status_code == 200 and response.json()["state"] == "ended"
    _, closed = await log.wait_for("closed", timeout=5)
    assert closed["reason"] == ChatSession.EndReason.CLIENT
    await log.wait_for("socket.close", timeout=5)
    assert live_session(session.pk) is None and len(live_sessions) == 0  # peer connection, tasks, worker place
    await database_sync_to_async(session.refresh_from_db)()
    assert session.end_reason == ChatSession.EndReason.CLIENT
