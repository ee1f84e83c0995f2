"""Session places and access after connect (issue 10, Medium 6 in part and Medium 7).

A ``created`` session that no WebSocket claims ends as ``abandoned`` and leaves its place; revoking the API
key, deactivating the tenant or the user, or removing the member closes the live WebSocket within 5 s, through
the real ASGI application, consumer and channel layer; and so does the owner's heartbeat when the row was ended
but the ``End`` never arrived.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from livehuman_site.tenancy.models import Membership, Tenant, TenantAPIKey
from sessions_app.live_sessions import live_sessions
from sessions_app.models import ChatSession
from tests.fixtures.live import EventLog, session_communicator
from tests.fixtures.tenancy import key_client

CLOSE_WITHIN_S = 5


def test_unclaimed_created_sessions_end_as_abandoned_and_free_their_places(world_a, talking_role):
    world_a.tenant.max_concurrent_sessions = 2
    world_a.tenant.save()
    client = key_client(world_a.raw_key)
    made = [client.post("/api/v1/sessions/", {"role": talking_role.pk}, format="json") for _ in range(3)]
    assert [response.status_code for response in made] == [201, 201, 429]
    # A minute later nobody has connected to them: they no longer count, and the tenant has its full quota.
    ChatSession.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    again = [client.post("/api/v1/sessions/", {"role": talking_role.pk}, format="json") for _ in range(2)]
    assert [response.status_code for response in again] == [201, 201]
    stale = ChatSession.objects.filter(pk__in=[response.json()["id"] for response in made[:2]])
    assert {(row.state, row.end_reason) for row in stale} == {("ended", "abandoned")}


async def _live(chat_session, **connect) -> EventLog:
    communicator = session_communicator(chat_session.pk, **connect)
    connected, _ = await communicator.connect()
    assert connected
    log = EventLog(communicator)
    await log.wait_for("state", timeout=30)
    return log


def _revoke_key(world, chat_session) -> None:
    key = TenantAPIKey.objects.get(pk=world.api_key.pk)
    key.revoked = True
    key.save()


def _deactivate_tenant(world, chat_session) -> None:
    tenant = Tenant.objects.get(pk=world.tenant.pk)
    tenant.is_active = False
    tenant.save()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("withdraw", [_revoke_key, _deactivate_tenant])
async def test_withdrawn_access_closes_the_live_websocket_within_5_s(chat_session, world_a, withdraw):
    log = await _live(chat_session, api_key=world_a.raw_key)
    await database_sync_to_async(withdraw)(world_a, chat_session)
    started = asyncio.get_running_loop().time()
    _, closed = await log.wait_for("socket.close", timeout=CLOSE_WITHIN_S)
    assert closed and asyncio.get_running_loop().time() - started < CLOSE_WITHIN_S
    await log.stop()
    row = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
    assert (row.state, row.end_reason) == ("ended", "revoked")
    assert len(live_sessions) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["membership", "user"])
async def test_a_removed_or_deactivated_member_is_cut_off(world_a, talking_role, how):
    from tests.test_consumer import cookie_for

    @database_sync_to_async
    def member_session() -> tuple[ChatSession, list]:
        session = ChatSession.objects.create(tenant=world_a.tenant, role=talking_role, user=world_a.member)
        return session, cookie_for(world_a.member)

    session, headers = await member_session()
    log = await _live(session, headers=headers)

    @database_sync_to_async
    def withdraw() -> None:
        if how == "membership":
            Membership.objects.filter(user=world_a.member, tenant=world_a.tenant).delete()
        else:
            get_user_model().objects.filter(pk=world_a.member.pk).update(is_active=False)
            user = get_user_model().objects.get(pk=world_a.member.pk)
            user.save()  # the admin saves the user: the signal sees is_active False

    await withdraw()
    await log.wait_for("socket.close", timeout=CLOSE_WITHIN_S)
    await log.stop()
    row = await database_sync_to_async(ChatSession.objects.get)(pk=session.pk)
    assert (row.state, row.end_reason) == ("ended", "revoked")


@pytest.mark.django_db(transaction=True)
async def test_a_session_whose_row_was_ended_elsewhere_is_closed_by_its_owners_heartbeat(chat_session, world_a):
    from sessions_app import heartbeat

    log = await _live(chat_session, api_key=world_a.raw_key)
    # The row ends, but the End never reaches the owner (the channel layer lost it): the next beat closes it.
    await database_sync_to_async(ChatSession.objects.filter(pk=chat_session.pk).update)(
        state=ChatSession.State.ENDED, end_reason=ChatSession.EndReason.REVOKED
    )
    assert len(live_sessions) == 1
    await heartbeat.beat()
    _, closed = await log.wait_for("closed", timeout=CLOSE_WITHIN_S)
    assert closed["reason"] == "revoked"
    await log.wait_for("socket.close", timeout=CLOSE_WITHIN_S)
    await log.stop()
    assert len(live_sessions) == 0
    row = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
    assert (row.state, row.end_reason) == ("ended", "revoked")
