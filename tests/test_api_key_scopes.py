"""API key scopes (issue 10, Low 14): a sessions key runs sessions and reads roles, a configuration key writes
voices, prompts, avatars and roles; over a real daphne (HTTP and WebSocket), in the admin, and across the
migration that gave keys made before scopes both of them."""

from __future__ import annotations

import re

import aiohttp
import httpx
import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from livehuman_site.tenancy.models import TenantAPIKey
from sessions_app.models import ChatSession
from tests.fixtures.callers import assert_error_body
from tests.test_scale_out import Socket

SESSIONS_ONLY = {"scope_sessions": True, "scope_configuration": False}
CONFIGURATION_ONLY = {"scope_sessions": False, "scope_configuration": True}


def make_key(world, name: str, scopes: dict[str, bool]) -> str:
    return TenantAPIKey.objects.create_key(name=name, tenant=world.tenant, **scopes)[1]


def assert_scope_refusal(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    assert_error_body(response, "api_key_scope")
    return response.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
async def test_each_scope_reaches_its_own_calls_over_real_http_and_websocket(daphne_server, world_a, talking_role):
    sessions_key = await database_sync_to_async(make_key)(world_a, "player", SESSIONS_ONLY)
    configuration_key = await database_sync_to_async(make_key)(world_a, "setup", CONFIGURATION_ONLY)
    voice = {"name": "Narrator"}

    def client(raw_key: str, language: str = "en") -> httpx.AsyncClient:
        headers = {"Authorization": f"Api-Key {raw_key}", "Accept-Language": language}
        return httpx.AsyncClient(base_url=f"{daphne_server}/api/v1", headers=headers, timeout=30)

    async with client(sessions_key) as player, client(sessions_key, "zh-hans") as player_zh:
        message = assert_scope_refusal(await player.post("/voices/", json=voice))
        assert "configuration" in message and "sessions" in message
        message_zh = assert_scope_refusal(await player_zh.post("/voices/", json=voice))
        assert "配置" in message_zh and "会话" in message_zh
        assert_scope_refusal(await player.get("/voices/"))
        assert_scope_refusal(await player.patch(f"/roles/{talking_role.pk}/", json={"name": "renamed"}))
        assert (await player.get("/roles/")).json()["results"][0]["id"] == talking_role.pk
        started = await player.post("/sessions/", json={"role": talking_role.pk})
        assert started.status_code == 201, started.text
        session_id = started.json()["id"]
        assert (await player.get(f"/sessions/{session_id}/state")).status_code == 200
        assert (await player.post(f"/sessions/{session_id}/end")).status_code == 200

    async with client(configuration_key) as setup:
        created = await setup.post("/voices/", json=voice)
        assert created.status_code == 201, created.text
        assert (await setup.get("/roles/")).status_code == 200
        assert_scope_refusal(await setup.post("/sessions/", json={"role": talking_role.pk}))
        assert_scope_refusal(await setup.get("/sessions/"))
        assert_scope_refusal(await setup.get(f"/sessions/{session_id}/messages/"))

    async with client(world_a.raw_key) as both:  # a key with both scopes does both
        assert (await both.post("/voices/", json={**voice, "name": "Second"})).status_code == 201
        assert (await both.post("/sessions/", json={"role": talking_role.pk})).status_code == 201

    # The WebSocket is a sessions call too: a configuration key is refused before anything starts.
    session = await database_sync_to_async(ChatSession.objects.create)(tenant=world_a.tenant, role=talking_role)
    ws_url = daphne_server.replace("http", "ws") + f"/ws/sessions/{session.pk}/?api_key={configuration_key}"
    async with aiohttp.ClientSession() as http:
        socket = Socket(await http.ws_connect(ws_url, headers={"Origin": daphne_server}))
        error = await socket.wait_for("error")
        await socket.wait_for("closed")
        await socket.ws.receive()
        await socket.close()
    assert error["code"] == "api_key_scope"
    assert socket.ws.close_code == 4403
    assert await database_sync_to_async(lambda: ChatSession.objects.get(pk=session.pk).state)() == "created"


@pytest.mark.django_db
def test_the_admin_shows_the_scope_and_a_new_key_runs_sessions_only(cast, world_a):
    client = cast.client("own_owner")
    page = client.get(reverse("admin:tenancy_tenantapikey_add")).content.decode()
    checkboxes = re.findall(r'(<input type="checkbox" name="(scope_\w+)"[^>]*>)', page)
    boxes = {name: "checked" in tag for tag, name in checkboxes}
    assert boxes == {"scope_sessions": True, "scope_configuration": False}
    assert "开始、控制和结束会话" in page  # the scopes explained, in the admin's language (Chinese by default)

    form = {"name": "scoped", "expiry_date_0": "", "expiry_date_1": ""}
    refused = client.post(reverse("admin:tenancy_tenantapikey_add"), form)
    assert refused.status_code == 200 and "请至少为该密钥选择一个权限范围" in refused.content.decode()
    assert not TenantAPIKey.objects.filter(name="scoped").exists()

    client.post(reverse("admin:tenancy_tenantapikey_add"), {**form, "scope_configuration": "on"})
    key = TenantAPIKey.objects.get(name="scoped")
    assert (key.scope_sessions, key.scope_configuration) == (False, True)
    listing = client.get(reverse("admin:tenancy_tenantapikey_changelist")).content.decode()
    assert "column-scope_sessions" in listing and "column-scope_configuration" in listing

    assert TenantAPIKey.objects.create_key(name="default", tenant=world_a.tenant)[0].scopes == {"sessions"}


@pytest.mark.django_db(transaction=True)
def test_keys_made_before_scopes_keep_both_after_the_migration():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    before, after = [("tenancy", "0002_tenant_storage_quota")], [("tenancy", "0003_api_key_scopes")]
    try:
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        tenant = old_apps.get_model("tenancy", "Tenant").objects.create(name="Old", slug="old")
        old_apps.get_model("tenancy", "TenantAPIKey").objects.create(
            id="old.key", prefix="old", hashed_key="x", name="old integration", tenant_id=tenant.pk
        )
        MigrationExecutor(connection).migrate(after)
        scopes = TenantAPIKey.objects.values_list("scope_sessions", "scope_configuration").get(name="old integration")
        assert scopes == (True, True)
    finally:  # the later migrations back, for the tests after this one
        MigrationExecutor(connection).migrate(latest)


@pytest.mark.django_db(transaction=True)
def test_taking_the_sessions_scope_ends_the_key_s_open_sessions(world_a, talking_role):
    session = ChatSession.objects.create(tenant=world_a.tenant, role=talking_role, api_key=world_a.api_key)
    world_a.api_key.scope_configuration = True
    world_a.api_key.save()
    assert ChatSession.objects.get(pk=session.pk).state == "created"
    world_a.api_key.scope_sessions = False
    world_a.api_key.save()
    assert ChatSession.objects.values_list("state", "end_reason").get(pk=session.pk) == ("ended", "revoked")
