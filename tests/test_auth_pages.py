"""Login and logout, the protected chat page, switching tenants, and the Chinese / English interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.signals import setting_changed
from django.test import Client

from avatars_app.models import Role, Voice
from livehuman_site.tenancy.models import Membership

pytestmark = pytest.mark.django_db

LOCALE_DIR = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
# A string of this project's own catalogue (Django's catalogues cannot make it pass by accident).
LOGIN_HINT = {
    "zh-hans": "登录后即可与你所在租户的数字人对话",
    "en": "Log in to talk to your tenant",
}


@pytest.fixture(scope="module", autouse=True)
def _compiled_catalogue():
    """The .mo file is built, not committed: compile it when missing or older than the .po."""
    po, mo = LOCALE_DIR / "django.po", LOCALE_DIR / "django.mo"
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        call_command("compilemessages", locale=["zh_Hans"], ignore_patterns=[".venv"], verbosity=0)
        # Forget catalogues Django may have loaded before the file existed.
        setting_changed.send(sender=None, setting="LOCALE_PATHS", value=settings.LOCALE_PATHS, enter=True)


def test_login_page_is_chinese_by_default():
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="zh-hans">' in page
    assert LOGIN_HINT["zh-hans"] in page and "登录" in page
    assert LOGIN_HINT["en"] not in page


def test_switching_to_english_and_back():
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/accounts/login/"})
    assert response.status_code == 302 and response.url == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert '<html lang="en">' in page and LOGIN_HINT["en"] in page
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert LOGIN_HINT["zh-hans"] in client.get("/accounts/login/").content.decode()


def test_admin_shows_the_projects_models_in_chinese_then_english(world_a):
    client = Client()
    client.force_login(world_a.owner)
    assert "聊天会话" in client.get("/admin/").content.decode()  # sessions_app's verbose name
    client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})
    page = client.get("/admin/").content.decode()
    assert "Chat sessions" in page and "聊天会话" not in page


def test_every_origin_page_gets_the_site_icon_instead_of_a_404():
    """The admin and DRF pages link no icon, so browsers ask for /favicon.ico (a console error when it 404s)."""
    response = Client().get("/favicon.ico", follow=True)
    assert response.redirect_chain == [("/static/livehuman/favicon.svg", 302)]
    assert response.status_code == 200 and b"<svg" in b"".join(response.streaming_content)


def test_chat_page_errors_read_as_one_sentence_in_each_language(world_a):
    """The error line's prefix is translated with its punctuation (a Chinese full-width colon, no space)."""
    client = Client()
    client.force_login(world_a.member)
    assert '"error": "\\u9519\\u8bef\\uff1a%(message)s"' in client.get("/chat/").content.decode()  # 错误：
    client.post("/i18n/setlang/", {"language": "en", "next": "/chat/"})
    assert '"error": "Error: %(message)s"' in client.get("/chat/").content.decode()


def test_chat_needs_a_login():
    response = Client().get("/chat/")
    assert response.status_code == 302 and response.url == "/accounts/login/?next=/chat/"


def test_login_then_logout(world_a):
    client = Client()
    response = client.post("/accounts/login/", {"username": "acme-member", "password": "pw-member-123"})
    assert response.status_code == 302 and response.url == "/chat/"
    assert client.get("/chat/").status_code == 200
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response.url == "/accounts/login/"
    assert client.get("/chat/").status_code == 302


def test_a_wrong_password_is_refused_with_a_message(world_a):
    client = Client()
    response = client.post("/accounts/login/", {"username": "acme-member", "password": "wrong"})
    assert response.status_code == 200
    assert "用户名和密码不匹配" in response.content.decode()
    assert client.get("/chat/").status_code == 302


def test_login_redirects_to_the_page_asked_for(world_a):
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": "acme-owner", "password": "pw-owner-123", "next": "/api/v1/docs/"}
    )
    assert response.status_code == 302 and response.url == "/api/v1/docs/"


def test_a_user_of_two_tenants_switches_between_them(world_a, world_b):
    Membership.objects.create(user=world_a.member, tenant=world_b.tenant, level=Membership.Level.MEMBER)
    for world, name in ((world_a, "Acme guide"), (world_b, "Globex guide")):
        voice = Voice.objects.create(tenant=world.tenant, name=f"{name} voice")
        Role.objects.create(tenant=world.tenant, name=name, voice=voice)
    client = Client()
    client.force_login(world_a.member)

    page = client.get("/chat/").content.decode()
    assert "Acme guide" in page and "Globex guide" not in page
    assert 'action="/tenant/switch/"' in page  # the switcher is offered: two tenants
    assert [v["name"] for v in client.get("/api/v1/voices/").json()["results"]] == ["Acme guide voice"]

    response = client.post("/tenant/switch/", {"tenant": world_b.tenant.pk, "next": "/chat/"})
    assert response.status_code == 302 and response.url == "/chat/"
    page = client.get("/chat/").content.decode()
    assert "Globex guide" in page and "Acme guide" not in page
    assert [v["name"] for v in client.get("/api/v1/voices/").json()["results"]] == ["Globex guide voice"]


def test_switching_to_a_tenant_one_does_not_belong_to_changes_nothing(world_a, world_b):
    voice = Voice.objects.create(tenant=world_a.tenant, name="v")
    Role.objects.create(tenant=world_a.tenant, name="Acme guide", voice=voice)
    client = Client()
    client.force_login(world_a.member)
    response = client.post("/tenant/switch/", {"tenant": world_b.tenant.pk, "next": "/chat/"}, follow=True)
    page = response.content.decode()
    assert "你不是该租户的成员" in page and "Acme guide" in page
    # An off-site "next" is not followed.
    response = client.post("/tenant/switch/", {"tenant": world_a.tenant.pk, "next": "https://evil.example/"})
    assert response.url == "/chat/"
