"""Per-tenant API keys: created in the admin and shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from livehuman_site.tenancy.models import TenantAPIKey
from tests.fixtures.callers import assert_error_body
from tests.fixtures.tenancy import key_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

KEY_PATTERN = re.compile(r"[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}")


def _create_in_admin(client, name: str, scopes: tuple[str, ...] = ("sessions",)) -> tuple[str, object]:
    """Add a key through the admin form (``scopes`` ticked); return the raw key from the one-time message and the
    response."""
    response = client.post(
        reverse("admin:tenancy_tenantapikey_add"),
        {"name": name, "expiry_date_0": "", "expiry_date_1": "", **{f"scope_{scope}": "on" for scope in scopes}},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(message) for message in get_messages(response.wsgi_request)] + [response.content.decode()]
    keys = {match for text in shown for match in KEY_PATTERN.findall(text)}
    assert len(keys) == 1, shown[:-1]
    return keys.pop(), response


def test_admin_creates_a_key_for_the_owners_tenant_and_shows_it_once(world_a, cast):
    client = cast.client("own_owner")
    raw_key, _response = _create_in_admin(client, "CRM integration")
    api_key = TenantAPIKey.objects.get(name="CRM integration")
    assert api_key.tenant == world_a.tenant
    assert key_client(raw_key).get("/api/v1/roles/").status_code == 200
    # Never again: neither the list nor the key's own page shows it.
    for url in (
        reverse("admin:tenancy_tenantapikey_changelist"),
        reverse("admin:tenancy_tenantapikey_change", args=[quote(api_key.pk)]),
    ):
        page = client.get(url)
        assert page.status_code == 200
        assert raw_key not in page.content.decode()
        assert raw_key.split(".")[1] not in page.content.decode()


def test_only_a_hash_of_the_key_is_stored(world_a):
    api_key, raw_key = TenantAPIKey.objects.create_key(name="stored", tenant=world_a.tenant)
    secret = raw_key.split(".", 1)[1]
    stored = TenantAPIKey.objects.filter(pk=api_key.pk).values().get()
    for column, value in stored.items():
        assert secret not in str(value), f"the secret part of the key is readable in column {column}"
    assert stored["hashed_key"] != secret and len(stored["hashed_key"]) > len(secret)
    assert key_client(raw_key).get("/api/v1/roles/").status_code == 200


def test_a_key_revoked_in_the_admin_is_refused_with_the_error_body(world_a, cast):
    raw_key = world_a.raw_key
    assert key_client(raw_key).get("/api/v1/voices/").status_code == 200
    response = cast.client("own_owner").post(
        reverse("admin:tenancy_tenantapikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [world_a.api_key.pk]},
    )
    assert response.status_code == 302
    assert TenantAPIKey.objects.get(pk=world_a.api_key.pk).revoked
    response = key_client(raw_key).get("/api/v1/voices/")
    assert response.status_code == 401
    assert_error_body(response, "authentication_failed")
    assert response["WWW-Authenticate"] == "Api-Key"


def test_an_expired_key_is_refused(world_a):
    api_key, raw_key = TenantAPIKey.objects.create_key(
        name="short-lived", tenant=world_a.tenant, expiry_date=timezone.now() + timedelta(hours=1)
    )
    assert key_client(raw_key).get("/api/v1/roles/").status_code == 200
    api_key.expiry_date = timezone.now() - timedelta(seconds=1)
    api_key.save()
    response = key_client(raw_key).get("/api/v1/roles/")
    assert response.status_code == 401
    assert_error_body(response, "authentication_failed")


@pytest.mark.parametrize(
    "header",
    ["Api-Key not-a-key", "Api-Key {prefix}.wrongsecretwrongsecretwrongsecre", "Api-Key {key}x"],
    ids=["malformed", "right prefix, wrong secret", "trailing garbage"],
)
def test_wrong_keys_are_refused(world_a, header):
    client = key_client("unused")
    prefix = world_a.raw_key.split(".")[0]
    client.credentials(HTTP_AUTHORIZATION=header.format(prefix=prefix, key=world_a.raw_key))
    response = client.get("/api/v1/voices/")
    assert response.status_code == 401
    assert_error_body(response, "authentication_failed")


def test_a_deactivated_tenant_s_keys_stop_working(world_a):
    world_a.tenant.is_active = False
    world_a.tenant.save()
    response = key_client(world_a.raw_key).get("/api/v1/voices/")
    assert response.status_code == 401
    assert_error_body(response, "authentication_failed")


def test_a_key_acts_for_its_tenant_only(world_a, world_b):
    from avatars_app.models import Voice

    Voice.objects.create(tenant=world_b.tenant, name="globex voice")
    response = key_client(world_a.raw_key).post("/api/v1/voices/", {"name": "acme voice"}, format="json")
    assert response.status_code == 201
    assert Voice.objects.get(pk=response.json()["id"]).tenant == world_a.tenant
    names = [voice["name"] for voice in key_client(world_a.raw_key).get("/api/v1/voices/").json()["results"]]
    assert names == ["acme voice"]


@pytest.mark.parametrize(
    ("language", "headings", "help_text"),
    [
        (
            "zh-hans",
            ["前缀", "名称", "会话", "配置", "创建时间", "过期时间", "已过期", "已吊销"],
            "API 密钥吊销后，客户端将无法再使用它（吊销后不可恢复）。",
        ),
        (
            "en",
            ["Prefix", "Name", "Sessions", "Configuration", "Created", "Expires", "Expired", "Revoked"],
            "If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)",
        ),
    ],
)
def test_the_key_list_and_form_read_in_the_admin_users_language(world_a, cast, language, headings, help_text):
    """The library's own fields have English labels only; the tenant's key model relabels them."""
    client = cast.client("own_owner")
    listing = client.get(reverse("admin:tenancy_tenantapikey_changelist"), HTTP_ACCEPT_LANGUAGE=language)
    shown = re.findall(r'<div class="text">\s*(?:<a [^>]*>|<span>)([^<]+)<', listing.content.decode())
    assert shown == headings
    change = client.get(
        reverse("admin:tenancy_tenantapikey_change", args=[quote(world_a.api_key.pk)]), HTTP_ACCEPT_LANGUAGE=language
    )
    assert help_text in change.content.decode()
