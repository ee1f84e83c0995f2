"""SessionConsumer over the real ASGI application: who may connect, the caps, and the message basics."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from sessions_app.live_sessions import live_sessions
from sessions_app.models import ChatSession
from sessions_app.session_factory import get_pool
from tests.fixtures.live import TOP_OF_LADDER, EventLog, live_session, refusal, session_communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(communicator) -> EventLog:
    connected, _ = await communicator.connect()
    assert connected
    return EventLog(communicator)


async def refused(communicator) -> tuple[dict, int]:
    """Connect, expect the error event, and the close code the socket was closed with."""
    return await refusal(await open_socket(communicator))


def cookie_for(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def test_without_login_or_key_the_connection_is_refused(chat_session):
    error, code = await refused(session_communicator(chat_session.pk))
    assert (error["code"], code) == ("unauthenticated", 4401)
    assert len(live_sessions) == 0


async def test_a_wrong_api_key_is_refused(chat_session):
    error, code = await refused(session_communicator(chat_session.pk, api_key="nope.nope"))
    assert (error["code"], code) == ("unauthenticated", 4401)


async def test_another_tenants_session_is_not_found_by_key_or_login(chat_session, world_b):
    error, code = await refused(session_communicator(chat_session.pk, api_key=world_b.raw_key))
    assert (error["code"], code) == ("not_found", 4404)
    headers = await database_sync_to_async(cookie_for)(world_b.owner)
    error, code = await refused(session_communicator(chat_session.pk, headers=headers))
    assert (error["code"], code) == ("not_found", 4404)
    assert await database_sync_to_async(lambda: ChatSession.objects.get(pk=chat_session.pk).state)() == "created"


async def test_a_refusal_is_worded_in_the_clients_language(chat_session, world_b):
    """The sentence beside the code follows the handshake's Accept-Language, not the server's default."""
    said = {}
    for language in ("en", "zh-CN"):
        headers = [(b"accept-language", language.encode())]
        error, code = await refused(session_communicator(chat_session.pk, api_key=world_b.raw_key, headers=headers))
        said[language] = (error["code"], code, error["message"])
    assert said == {"en": ("not_found", 4404, "No such session."), "zh-CN": ("not_found", 4404, "没有这个会话。")}


async def test_own_tenant_connects_by_login_and_by_header_key(chat_session, world_a):
    headers = await database_sync_to_async(cookie_for)(world_a.owner)
    for extra in (headers, [(b"authorization", f"Api-Key {world_a.raw_key}".encode())]):
        communicator = session_communicator(chat_session.pk, headers=extra)
        log = await open_socket(communicator)
        _, state = await log.wait_for("state")
        assert state == {"type": "state", "state": "idle", "fps": 25, "degrade": TOP_OF_LADDER}
        session = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
        assert session.state == "connected" and session.worker and session.started_at
        await log.stop()
        await communicator.disconnect(code=4000)  # a drop: the next connection may take over
        await database_sync_to_async(ChatSession.objects.filter(pk=chat_session.pk).update)(state="created")


async def test_a_member_cannot_open_another_members_session(world_a, chat_session):
    headers = await database_sync_to_async(cookie_for)(world_a.member)
    error, code = await refused(session_communicator(chat_session.pk, headers=headers))
    assert (error["code"], code) == ("not_found", 4404)


async def test_the_worker_cap_refuses_before_any_engine_or_peer_connection(
    chat_session, world_a, settings, monkeypatch
):
    import aiortc

    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "MAX_SESSIONS_PER_WORKER": 0}
    made: list = []
    monkeypatch.setattr(aiortc.RTCPeerConnection, "__init__", lambda *a, **k: made.append("peer"))
    monkeypatch.setattr(get_pool(), "lease", lambda **kwargs: made.append("lease"))
    error, code = await refused(session_communicator(chat_session.pk, api_key=world_a.raw_key))
    assert (error["code"], code) == ("session_limit", 4429)
    assert made == []
    assert len(live_sessions) == 0


async def test_a_second_connection_to_a_live_session_is_refused(chat_session, world_a):
    first = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    log = await open_socket(first)
    await log.wait_for("state")
    error, code = await refused(session_communicator(chat_session.pk, api_key=world_a.raw_key))
    assert (error["code"], code) == ("session_busy", 4409)
    await log.stop()
    await first.disconnect()


async def test_an_ended_session_cannot_be_reopened(chat_session, world_a):
    await database_sync_to_async(chat_session.end)(ChatSession.EndReason.CLIENT)
    error, code = await refused(session_communicator(chat_session.pk, api_key=world_a.raw_key))
    assert (error["code"], code) == ("session_ended", 4409)


async def test_a_role_without_a_ready_avatar_is_refused_and_the_session_ends(chat_session, world_a):
    await database_sync_to_async(type(chat_session.role.avatar).objects.update)(status="building")
    error, code = await refused(session_communicator(chat_session.pk, api_key=world_a.raw_key))
    assert (error["code"], code) == ("engine_unavailable", 4503)
    session = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
    assert (session.state, session.end_reason) == ("ended", "error")
    assert len(live_sessions) == 0


async def test_ping_pong_and_bad_messages_get_error_events_without_closing(chat_session, world_a):
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    log = await open_socket(communicator)
    await log.wait_for("state")
    await communicator.send_to(text_data="{not json")
    _, error = await log.wait_for("error")
    assert error["code"] == "bad_json"
    await communicator.send_json_to({"type": "fly"})
    await communicator.send_json_to({"type": "say", "text": "   "})
    await communicator.send_json_to({"type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
    await communicator.send_json_to({"type": "offer", "sdp": "v=0 this is not SDP"})
    await communicator.send_json_to({"type": "ping"})
    await log.wait_for("pong")
    codes = [e["code"] for e in log.of_type("error")]
    assert codes == ["bad_json", "bad_message", "bad_message", "no_offer", "bad_offer"]
    assert live_session(chat_session.pk).peer.connection is None  # a corrected offer may follow
    assert not log.of_type("socket.close")
    await log.stop()
    await communicator.disconnect()


async def test_closing_the_socket_frees_the_session_and_records_the_reason(chat_session, world_a):
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    log = await open_socket(communicator)
    await log.wait_for("state")
    live = live_session(chat_session.pk)
    assert live is not None and get_pool().active_leases == 1
    await log.stop()
    await communicator.disconnect(code=1001)  # the page went away
    assert len(live_sessions) == 0 and live.closed and len(live.owner) == 0
    assert get_pool().active_leases == 0
    session = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
    assert (session.state, session.end_reason) == ("ended", "client")


async def test_a_dropped_socket_ends_the_session_as_disconnected(chat_session, world_a):
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    log = await open_socket(communicator)
    await log.wait_for("state")
    await log.stop()
    await communicator.disconnect(code=1006)
    session = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
    assert session.end_reason == "disconnected"


async def test_say_before_the_peer_connects_records_a_message(chat_session, world_a):
    from sessions_app.models import Message

    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    log = await open_socket(communicator)
    await log.wait_for("state")
    await communicator.send_json_to({"type": "say", "text": "Hi there, friend."})
    _, subtitle = await log.wait_for("subtitle", timeout=20)
    assert subtitle["text"] == "Hi there,"  # the first clause is spoken on its own: the answer starts sooner
    _, timings = await log.wait_for("timings", timeout=20)
    assert timings["message_id"] == subtitle["message_id"]
    message = await database_sync_to_async(Message.objects.get)(pk=subtitle["message_id"])
    assert (message.speaker, message.text, message.interrupted) == ("assistant", "Hi there, friend.", False)
    assert 0 < message.tts_first_audio_ms <= message.first_frame_ms <= message.total_ms
    await log.stop()
    await communicator.disconnect()


async def test_an_unexpected_failure_at_start_is_refused_and_gives_the_place_back(chat_session, world_a, monkeypatch):
    from realtime.session import LiveSession

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(LiveSession, "open", broken)
    error, code = await refused(session_communicator(chat_session.pk, api_key=world_a.raw_key))
    assert (error["code"], code) == ("internal_error", 4500)  # daphne refuses 1011 from an application
    assert len(live_sessions) == 0


async def test_an_idle_session_ends_itself_and_frees_its_place(chat_session, world_a, settings):
    settings.LIVEHUMAN = {"SESSION_IDLE_TIMEOUT_S": 1.5}
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    log = await open_socket(communicator)
    await log.wait_for("state")
    await communicator.send_json_to({"type": "say", "text": "Hi."})  # activity: the idle time starts again after it
    await log.wait_for("timings", timeout=20)
    answered_at = log.events[-1][0]
    closed_at, closed = await log.wait_for("closed", timeout=10)
    assert closed["reason"] == "idle"
    assert closed_at - answered_at >= 1.0  # counted from the end of the answer, not from connecting
    await log.wait_for("socket.close")
    assert live_session(chat_session.pk) is None
    await database_sync_to_async(chat_session.refresh_from_db)()
    assert chat_session.end_reason == ChatSession.EndReason.IDLE
    await log.stop()
