"""``manage.py setup_demo``: creates the demo tenant, users, voice, prompt and role; a second run changes nothing."""

from __future__ import annotations

import io
import re

import pytest
from django.apps import apps
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from avatars_app.models import Avatar, Role
from livehuman_site.tenancy.models import Membership, Tenant

pytestmark = pytest.mark.django_db


def _log_in(**credentials: str):
    """``authenticate`` as the login form calls it: with the request (the lock-out needs its address)."""
    return authenticate(request=RequestFactory().post("/accounts/login/"), **credentials)


def _run() -> str:
    out = io.StringIO()
    call_command("setup_demo", stdout=out, stderr=out)
    return out.getvalue()


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()}


def _passwords(output: str) -> dict[str, str]:
    return dict(re.findall(r"User (\S+), password: (\S+)", output))


@pytest.mark.slow  # the first run builds the demo avatar (about 15 s)
def test_setup_demo_creates_everything_once():
    first = _run()
    passwords = _passwords(first)
    assert set(passwords) == {"admin", "demo"}

    tenant = Tenant.objects.get(slug="demo")
    admin = _log_in(username="admin", password=passwords["admin"])
    assert admin is not None and admin.is_superuser and admin.is_staff
    assert Membership.objects.get(user=admin, tenant=tenant).level == Membership.Level.OWNER
    member = _log_in(username="demo", password=passwords["demo"])
    assert member is not None and not member.is_staff
    assert Membership.objects.get(user=member, tenant=tenant).level == Membership.Level.MEMBER

    role = Role.objects.select_related("voice", "prompt", "avatar").get(tenant=tenant, name="Demo")
    assert (role.voice.engine, role.voice.language, role.voice.tenant) == ("piper", "en", tenant)
    assert role.prompt.tenant == tenant and role.prompt.system_text
    assert role.active and role.llm_engine == "echo"
    assert role.avatar is not None and role.avatar.tenant == tenant and role.avatar.is_ready

    counts, password_hash = _row_counts(), get_user_model().objects.get(username="admin").password
    second = _run()
    assert _passwords(second) == {}  # no password is printed, nor changed
    assert "admin already exists; its password is unchanged" in second
    assert "Created: nothing" in second
    assert _row_counts() == counts
    assert get_user_model().objects.get(username="admin").password == password_hash
    assert _log_in(username="admin", password=passwords["admin"]) is not None


def _prebuilt_avatar(tenant: Tenant) -> Avatar:
    """Stands in for the 15-s build: this test is about the rows around the avatar, the first one about the avatar."""
    avatar, _ = Avatar.objects.get_or_create(
        tenant=tenant, name="prebuilt", defaults={"source_video": "x.mp4", "status": Avatar.Status.READY}
    )
    return avatar


def test_setup_demo_leaves_an_existing_admin_and_role_alone(monkeypatch):
    monkeypatch.setattr("avatars_app.demo.ensure_demo_avatar", _prebuilt_avatar)
    User = get_user_model()
    User.objects.create_user("admin", password="chosen-by-the-operator")
    _run()
    assert _log_in(username="admin", password="chosen-by-the-operator") is not None
    role = Role.objects.get(name="Demo")
    role.greeting = "Edited by the operator"
    role.save()
    _run()
    assert Role.objects.get(pk=role.pk).greeting == "Edited by the operator"
    assert Membership.objects.filter(user__username="admin", tenant__slug="demo").exists()


def test_the_chinese_demo_role_speaks_mandarin_offline_and_edge_tts_is_one_field_away(monkeypatch, settings, tmp_path):
    from avatars_app.demo_data import ZH_GREETING, ZH_ROLE_NAME
    from realtime.engines.tts.edge import EdgeTTS
    from realtime.engines.tts.espeak import EspeakTTS, espeak_flags
    from sessions_app.session_factory import conversation_settings, voice_settings
    from sessions_app.voice_input import voice_input_note

    monkeypatch.setattr("avatars_app.demo_data.ensure_demo_avatar", _prebuilt_avatar)
    _run()
    role = Role.objects.select_related("voice", "prompt", "avatar").get(tenant__slug="demo", name=ZH_ROLE_NAME)
    assert (role.language, role.asr_engine, role.llm_engine, role.greeting) == ("zh", "funasr", "echo", ZH_GREETING)
    assert "中文" in role.prompt.system_text and role.avatar == Role.objects.get(name="Demo").avatar
    voice = role.voice
    assert (voice.engine, voice.voice_id, voice.language) == ("espeak", "", "zh")
    assert espeak_flags(voice_settings(voice))[:2] == ["-v", "cmn-latn-pinyin"]
    EspeakTTS(voice_settings(voice))  # the voice exists in this espeak-ng (checked at construction)
    voice.engine = "edge"  # the one field to change on a machine that is online
    assert EdgeTTS(voice_settings(voice)).voice_name == "zh-CN-XiaoxiaoNeural"

    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "FUNASR_MODEL_DIR": ""}
    assert conversation_settings(role, session_id="s").asr_engine == "funasr"
    assert "download_funasr_models" in voice_input_note(role)
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "FUNASR_MODEL_DIR": str(tmp_path)}
    assert voice_input_note(role) == ""  # models present: FunASR hears the role, no note
    assert voice_input_note(Role.objects.get(name="Demo")) == ""
