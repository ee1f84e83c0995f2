"""Role switch inside a running session, over the WebSocket and over REST: avatar, voice, fps, prompt and LLM
settings change without reconnecting, the row follows, and a preloaded role switches without loading anything."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from avatars_app.models import Role
from sessions_app import owner
from sessions_app.models import ChatSession
from sessions_app.preload import preload_active_roles
from sessions_app.session_factory import get_pool
from testkit.defaults import model_pool
from tests.fixtures.browser import chat_page_as_member, wait_until
from tests.fixtures.live import EventLog, live_session, make_other_role, rest_client, session_communicator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other_role(world_a, _media_root) -> Role:
    return make_other_role(world_a, _media_root)


@pytest.fixture
async def live(chat_session, world_a, other_role):
    """The session connected over its WebSocket, both roles preloaded into the process pool, and its event log."""
    assert await preload_active_roles(get_pool()) >= 2
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    assert (await communicator.connect())[0]
    log = EventLog(communicator)
    await log.wait_for("state")
    yield chat_session, communicator, log
    await log.stop()
    await communicator.disconnect()


def pool_avatar(path) -> object:
    """The pool's one opened copy of the bundle at ``path``."""
    pool = get_pool()
    return next(pool._loaded[key] for key in pool.loaded() if key[0] == "avatar" and key[1][0] == str(path.resolve()))


async def test_switch_over_the_websocket_swaps_everything_in_place(live, other_role, _media_root):
    session, communicator, log = live
    owner = live_session(session.pk)
    loaded_before = get_pool().loaded()
    old_keys = owner.lease.keys  # tts, lipsync, avatar
    await communicator.send_json_to({"type": "say", "text": "A long first answer. " * 6})
    await log.wait_for("state", state="speaking", timeout=20)

    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    await communicator.send_json_to({"type": "switch_role", "role": other_role.pk})
    arrived_at, switched = await log.wait_for("role", timeout=10)
    round_trip_ms = (arrived_at - sent_at) * 1000
    print(
        f"\nrole switch over the WebSocket: {switched['switch_ms']} ms on the server, {round_trip_ms:.0f} ms round trip"
    )
    assert switched == {
        "type": "role",
        "role": other_role.pk,
        "name": "Navigator",
        "fps": 30,
        "switch_ms": switched["switch_ms"],
    }
    # nothing was loaded: the role was preloaded (how fast the switch is, is bench.pool's "3. role switch")
    assert get_pool().loaded() == loaded_before

    # the old role's answer was cut; the page hears the new fps
    _, timings = await log.wait_for("timings", timeout=5)
    assert timings["interrupted"]
    await log.wait_for("state", state="idle", fps=30, timeout=5)

    # the same live session (no reconnect) now plays the other role with the pool's shared models
    assert live_session(session.pk) is owner
    avatar = pool_avatar(_media_root / other_role.avatar.bundle_path)
    assert owner.video_track.avatar is avatar and owner.pipeline.features.avatar is avatar
    assert owner.lease.avatar is avatar and owner.lease.tts.voice.rate == 1.25
    assert owner.rate.fps == 30 and owner.snapshot()["fps"] == 30 and owner.snapshot()["role"] == other_role.pk
    assert owner.conversation.settings.llm.system_prompt == "You are Navigator."
    assert owner.conversation.settings.llm.temperature == 0.2
    # the old role's voice and avatar are no longer held by the session; the lip-sync model it shares still is
    assert [get_pool().users(key) for key in old_keys] == [0, 1, 0]
    row = await database_sync_to_async(ChatSession.objects.get)(pk=session.pk)
    assert row.role_id == other_role.pk

    # and it speaks as the new role
    await communicator.send_json_to({"type": "say", "text": "Navigator here."})
    await log.wait_for("subtitle", text="Navigator here.", timeout=20)


async def test_switch_over_rest_reaches_the_owner(live, other_role, world_a):
    session, _, log = live
    async with rest_client(world_a.raw_key) as client:
        loop = asyncio.get_running_loop()
        loaded_before = get_pool().loaded()
        started = loop.time()
        response = await client.post(f"/api/v1/sessions/{session.pk}/role/", json={"role": other_role.pk})
        took_ms = (loop.time() - started) * 1000
        assert response.status_code == 200, response.text
        body = response.json()
        print(f"\nrole switch over REST: {body['switch_ms']} ms on the owner, {took_ms:.0f} ms for the request")
        assert body["role"] == other_role.pk and body["role_name"] == "Navigator" and body["fps"] == 30
        assert body["switch_ms"] >= 0 and get_pool().loaded() == loaded_before  # preloaded: nothing was loaded
        _, event = await log.wait_for("role", timeout=5)
        assert event["role"] == other_role.pk
        state = (await client.get(f"/api/v1/sessions/{session.pk}/state/")).json()
        assert state["role"] == other_role.pk and state["fps"] == 30
    assert live_session(session.pk).config.role_id == other_role.pk


async def test_another_tenants_or_unknown_role_is_refused_and_nothing_changes(live, world_a, world_b, _media_root):
    session, communicator, log = live
    foreign = await database_sync_to_async(make_other_role)(world_b, _media_root, name="Stranger")
    await communicator.send_json_to({"type": "switch_role", "role": foreign.pk})
    _, error = await log.wait_for("error", timeout=5)
    assert error["code"] == "role_not_found"
    async with rest_client(world_a.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{session.pk}/role/", json={"role": foreign.pk})
        assert response.status_code == 400
        assert response.json()["error"]["code"] in {"role_not_found", "invalid"}
        assert "role" in response.json()["error"]["fields"]
        # the other tenant cannot switch (or even see) this session
    async with rest_client(world_b.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{session.pk}/role/", json={"role": foreign.pk})
        assert response.status_code == 404
    owner = live_session(session.pk)
    assert owner.config.role_id == session.role_id
    assert not log.of_type("role")


async def test_an_inactive_role_is_refused(live, other_role, world_a):
    session, _, log = live
    await database_sync_to_async(Role.objects.filter(pk=other_role.pk).update)(active=False)
    async with rest_client(world_a.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{session.pk}/role/", json={"role": other_role.pk})
    assert response.status_code == 409 and response.json()["error"]["code"] == "role_unavailable"
    assert live_session(session.pk).config.role_id == session.role_id
    assert not log.of_type("role")


async def test_a_session_not_connected_yet_just_changes_its_stored_role(chat_session, other_role, world_a):
    async with rest_client(world_a.raw_key) as client:
        response = await client.post(f"/api/v1/sessions/{chat_session.pk}/role/", json={"role": other_role.pk})
        assert response.status_code == 200 and response.json()["role"] == other_role.pk
        assert "switch_ms" not in response.json()
        await client.post(f"/api/v1/sessions/{chat_session.pk}/end/")
        ended = await client.post(f"/api/v1/sessions/{chat_session.pk}/role/", json={"role": other_role.pk})
        assert ended.status_code == 409 and ended.json()["error"]["code"] == "session_ended"
    row = await database_sync_to_async(ChatSession.objects.get)(pk=chat_session.pk)
    assert row.role_id == other_role.pk


@pytest.mark.parametrize("preload", [True, False])
async def test_the_preload_setting_loads_every_active_role_when_the_first_session_connects(
    chat_session, world_a, other_role, _media_root, settings, monkeypatch, preload
):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "PRELOAD_ROLES": preload}
    pool = model_pool(device="cpu")  # this worker's pool, fresh: nothing loaded yet
    monkeypatch.setattr("sessions_app.owner.get_pool", lambda: pool)
    preloading: list[object] = []  # the pools the session start-up asked to preload, in order
    start_preload = owner.preload_once
    monkeypatch.setattr(owner, "preload_once", lambda pool: preloading.append(pool) or start_preload(pool))
    other_avatar = str((_media_root / other_role.avatar.bundle_path).resolve())

    def other_role_loaded() -> bool:  # the avatar is the last part of a role the pool loads
        return any(key[0] == "avatar" and key[1][0] == other_avatar for key in pool.loaded())

    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    assert (await communicator.connect())[0]
    log = EventLog(communicator)
    await log.wait_for("state", timeout=20)
    try:
        if preload:
            async with asyncio.timeout(20):
                while not other_role_loaded():
                    await asyncio.sleep(0.05)
            assert preloading == [pool]
            loaded = pool.loaded()
            await communicator.send_json_to({"type": "switch_role", "role": other_role.pk})
            await log.wait_for("role", timeout=10)
            assert pool.loaded() == loaded  # the switch found everything in place
        else:  # off by default: the start-up (done when the state arrives) never asked, so only its role loaded
            assert preloading == [] and not other_role_loaded()
    finally:
        await log.stop()
        await communicator.disconnect()
        await pool.aclose()


@pytest.mark.browser
@pytest.mark.slow
def test_the_chat_page_switches_role_while_talking(daphne_server, world_a, talking_role, other_role, settings):
    with chat_page_as_member(daphne_server, world_a.member, settings) as chat:
        page, errors = chat.page, chat.errors
        page.select_option("#role", str(talking_role.pk))
        page.click("#start-button")
        page.wait_for_selector("#say-text:not([disabled])", timeout=30_000)
        wait_until(page, "window.liveHuman.serverFps === 25", 10_000)

        page.select_option("#role", str(other_role.pk))  # the page's control: switch in place
        page.wait_for_selector("#history li.message.system", timeout=20_000)
        assert "Navigator" in page.inner_text("#history li.message.system")
        wait_until(page, "window.liveHuman.serverFps === 30", 10_000)
        assert page.evaluate("window.liveHuman.pc.connectionState") == "connected"  # same peer connection
        assert not errors, errors
    session = ChatSession.objects.get(tenant=world_a.tenant)
    assert session.role_id == other_role.pk
