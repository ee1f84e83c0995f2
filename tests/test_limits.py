"""Session limits, per tenant and per worker process: a clear refusal, before any engine or peer connection,
and the place given back when a session ends."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from livehuman_site.tenancy.models import Tenant
from sessions_app.live_sessions import live_sessions
from sessions_app.models import ChatSession
from sessions_app.session_factory import get_pool
from tests.fixtures.live import EventLog, make_talking_role, refusal, rest_client, session_communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(session_id, raw_key: str) -> EventLog:
    communicator = session_communicator(session_id, api_key=raw_key)
    assert (await communicator.connect())[0]
    return EventLog(communicator)


@pytest.fixture
def count_engine_and_peer_starts(monkeypatch):
    """Counts leases taken from the pool and peer connections made from now on."""
    import aiortc

    started: list[str] = []
    lease, peer_init = get_pool().lease, aiortc.RTCPeerConnection.__init__

    async def counting_lease(**kwargs):
        started.append("lease")
        return await lease(**kwargs)

    def counting_peer(self, *args, **kwargs):
        started.append("peer")
        peer_init(self, *args, **kwargs)

    monkeypatch.setattr(get_pool(), "lease", counting_lease)
    monkeypatch.setattr(aiortc.RTCPeerConnection, "__init__", counting_peer)
    return started


async def test_the_tenant_limit_refuses_a_new_session_clearly_and_ending_one_frees_a_place(
    world_a, world_b, talking_role, _media_root
):
    await database_sync_to_async(Tenant.objects.filter(pk=world_a.tenant.pk).update)(max_concurrent_sessions=1)
    other_role = await database_sync_to_async(make_talking_role)(world_b, _media_root)
    async with rest_client(world_a.raw_key) as acme, rest_client(world_b.raw_key) as other:
        first = await acme.post("/api/v1/sessions/", json={"role": talking_role.pk})
        assert first.status_code == 201
        refused = await acme.post("/api/v1/sessions/", json={"role": talking_role.pk})
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "session_limit" and "1" in error["message"]  # the message names the limit
        # another tenant's limit is its own
        assert (await other.post("/api/v1/sessions/", json={"role": other_role.pk})).status_code == 201
        await acme.post(f"/api/v1/sessions/{first.json()['id']}/end/")
        assert (await acme.post("/api/v1/sessions/", json={"role": talking_role.pk})).status_code == 201


async def test_the_worker_cap_refuses_the_next_session_before_any_engine_or_peer_and_gives_the_place_back(
    world_a, talking_role, settings, count_engine_and_peer_starts
):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "MAX_SESSIONS_PER_WORKER": 1}
    first, second = [
        await database_sync_to_async(ChatSession.objects.create)(
            tenant=world_a.tenant, role=talking_role, api_key=world_a.api_key
        )
        for _ in range(2)
    ]
    live = await connect(first.pk, world_a.raw_key)
    await live.wait_for("state")
    assert count_engine_and_peer_starts == ["lease"]

    error, code = await refusal(await connect(second.pk, world_a.raw_key))
    assert (error["code"], code) == ("session_limit", 4429)
    assert error["message"]  # a sentence for the page (in the UI's language)
    assert count_engine_and_peer_starts == ["lease"]  # the refused session loaded nothing and made no peer
    assert len(live_sessions) == 1

    await live.stop()
    await live.communicator.disconnect()
    retry = await connect(second.pk, world_a.raw_key)
    await retry.wait_for("state")  # the place was given back
    assert count_engine_and_peer_starts == ["lease", "lease"]
    await retry.stop()
    await retry.communicator.disconnect()


async def test_the_tenant_limit_is_checked_again_when_a_session_goes_live(
    world_a, talking_role, count_engine_and_peer_starts
):
    first, second = [
        await database_sync_to_async(ChatSession.objects.create)(
            tenant=world_a.tenant, role=talking_role, api_key=world_a.api_key
        )
        for _ in range(2)
    ]
    # both were created under the limit; then an operator lowers it to one
    await database_sync_to_async(Tenant.objects.filter(pk=world_a.tenant.pk).update)(max_concurrent_sessions=1)
    live = await connect(first.pk, world_a.raw_key)
    await live.wait_for("state")
    error, code = await refusal(await connect(second.pk, world_a.raw_key))
    assert (error["code"], code) == ("session_limit", 4429)
    assert count_engine_and_peer_starts == ["lease"]
    await live.stop()
    await live.communicator.disconnect()
