"""Single-use, short-lived WebSocket tickets (issue 10, Low 12): ``POST sessions/`` returns a ``ws_url`` that opens
the session once, within WS_TICKET_TTL_S, with no API key in the URL; a used, expired, unknown or other
session's ticket is refused with its own code. Over a real daphne, and through the real ASGI application."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import httpx
import pytest
from channels.db import database_sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from livehuman_site.tenancy.models import WebSocketTicket
from tests.fixtures.live import EventLog, refusal, session_communicator
from tests.test_scale_out import Socket

pytestmark = pytest.mark.django_db(transaction=True)


async def refused_over_daphne(http: aiohttp.ClientSession, url: str) -> tuple[str, int]:
    """Connect to ``url`` on a real daphne; the refusal's error code and the socket's close code."""
    socket = Socket(await http.ws_connect(url))
    try:
        error = await socket.wait_for("error")
        await socket.wait_for("closed")
        await socket.ws.receive()  # the close frame
    finally:
        await socket.close()
    return error["code"], socket.ws.close_code


async def test_a_ticket_opens_its_session_once_over_a_real_daphne(daphne_server, world_a, talking_role):
    ws_base = daphne_server.replace("http", "ws")
    headers = {"Authorization": f"Api-Key {world_a.raw_key}"}
    async with httpx.AsyncClient(base_url=f"{daphne_server}/api/v1", headers=headers, timeout=30) as rest:
        first = (await rest.post("/sessions/", json={"role": talking_role.pk})).json()
        second = (await rest.post("/sessions/", json={"role": talking_role.pk})).json()
    assert first["ws_url"].startswith(f"/ws/sessions/{first['id']}/?ticket=")
    assert world_a.raw_key not in first["ws_url"] and world_a.raw_key.split(".")[1] not in first["ws_url"]
    second_ticket = second["ws_url"].split("?ticket=")[1]

    async with aiohttp.ClientSession() as http:
        # Another session's ticket opens nothing here, and is spent by trying.
        other = f"{ws_base}/ws/sessions/{first['id']}/?ticket={second_ticket}"
        assert await refused_over_daphne(http, other) == ("ticket_other_session", 4403)
        assert await refused_over_daphne(http, ws_base + second["ws_url"]) == ("ticket_used", 4401)

        socket = Socket(await http.ws_connect(ws_base + first["ws_url"]))  # nothing but the ticket
        try:
            state = await socket.wait_for("state", timeout=60)
            assert state["state"] == "idle"
            assert await refused_over_daphne(http, ws_base + first["ws_url"]) == ("ticket_used", 4401)
        finally:
            await socket.close()

        unknown = f"{ws_base}/ws/sessions/{first['id']}/?ticket=not-a-ticket"
        assert await refused_over_daphne(http, unknown) == ("ticket_unknown", 4401)


async def test_an_expired_ticket_is_refused_and_a_fresh_one_can_be_asked_for(world_a, talking_role):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world_a.raw_key}")
    post = database_sync_to_async(lambda path, body=None: client.post(path, body, format="json").json())
    session = await post("/api/v1/sessions/", {"role": talking_role.pk})
    await database_sync_to_async(WebSocketTicket.objects.update)(expires_at=timezone.now() - timedelta(seconds=1))
    error, code = await refusal(await open_log(session["ws_url"]))
    assert (error["code"], code) == ("ticket_expired", 4401)
    assert "60" in error["message"]

    renewed = await post(f"/api/v1/sessions/{session['id']}/ticket")
    assert renewed["ws_url"] != session["ws_url"]
    log = await open_log(renewed["ws_url"])
    _, state = await log.wait_for("state", timeout=60)
    assert state["state"] == "idle"
    await log.stop()
    await log.communicator.disconnect()


async def test_a_logged_in_user_s_ticket_acts_for_that_user_in_the_session_s_tenant(world_a, world_b, talking_role):
    client = APIClient()
    await database_sync_to_async(client.force_login)(world_a.member)
    body = await database_sync_to_async(
        lambda: client.post("/api/v1/sessions/", {"role": talking_role.pk}, format="json").json()
    )()
    ticket = await database_sync_to_async(WebSocketTicket.objects.get)()
    assert (ticket.user_id, ticket.api_key_id, ticket.tenant_id) == (world_a.member.pk, None, world_a.tenant.pk)
    log = await open_log(body["ws_url"])  # no cookie: the ticket is the only credential
    _, state = await log.wait_for("state", timeout=60)
    assert state["state"] == "idle"
    await log.stop()
    await log.communicator.disconnect()


async def test_a_ticket_of_a_key_revoked_since_is_refused(world_a, talking_role):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {world_a.raw_key}")
    body = await database_sync_to_async(
        lambda: client.post("/api/v1/sessions/", {"role": talking_role.pk}, format="json").json()
    )()
    world_a.api_key.revoked = True
    await world_a.api_key.asave()
    error, code = await refusal(await open_log(body["ws_url"]))
    assert (error["code"], code) == ("unauthenticated", 4401)


async def open_log(ws_url: str) -> EventLog:
    """Connect to ``ws_url`` (path and query) through the real ASGI application, with no other credential."""
    communicator = session_communicator(None, ws_url=ws_url)
    connected, _ = await asyncio.wait_for(communicator.connect(), 30)
    assert connected
    return EventLog(communicator)
