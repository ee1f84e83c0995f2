"""The demo tenant, its users and a working role: what ``manage.py setup_demo`` creates.

Idempotent: every row is looked up by its natural key first and an existing
row is left as it is, so a second run changes nothing. In particular a
password is generated only when its user is created, and shown only then.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from livehuman_site.tenancy.models import Membership, Tenant

from .demo import ensure_demo_avatar
from .models import Avatar, Language, Prompt, Role, Voice

DEMO_TENANT_SLUG = "demo"
ADMIN_USERNAME = "admin"
MEMBER_USERNAME = "demo"
DEMO_ROLE_NAME = "Demo"
DEMO_VOICE_NAME = "Demo voice (Piper, English)"
DEMO_PROMPT_NAME = "Demo prompt"
DEMO_SYSTEM_TEXT = "You are the LiveHuman demo, a friendly digital human. Answer in one or two short spoken sentences."
DEMO_GREETING = "Hello! I am the LiveHuman demo. Say something and I will answer."
# The Chinese demo: espeak-ng's Mandarin voice offline (chosen by the language); changing the voice's engine to
# "edge" alone gives edge-tts' zh-CN-XiaoxiaoNeural on a machine that is online. FunASR hears it once its models
# are downloaded (manage.py download_funasr_models); until then the chat page says so and typing works.
ZH_ROLE_NAME = "演示助手"
ZH_VOICE_NAME = "演示语音（espeak-ng 中文，可改用 edge-tts）"
ZH_PROMPT_NAME = "演示提示词"
ZH_SYSTEM_TEXT = "你是 LiveHuman 的演示数字人，亲切友好。请用一两句简短的中文口语回答。"
ZH_GREETING = "你好！我是 LiveHuman 演示助手。打字或者说话，我都会回答你。"


@dataclass
class DemoData:
    """What exists after a run; ``*_password`` is set only for a user created by this run."""

    tenant: Tenant
    admin: Any
    member: Any
    role: Any
    chinese_role: Any = None
    admin_password: str | None = None
    member_password: str | None = None
    created: list[str] = field(default_factory=list)


def _ensure_user(username: str, *, superuser: bool, report: DemoData) -> tuple[Any, str | None]:
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, None
    password = secrets.token_urlsafe(12)
    if superuser:
        user = User.objects.create_superuser(username=username, email="", password=password)
    else:
        user = User.objects.create_user(username=username, password=password)
    report.created.append(f"user {username}")
    return user, password


def _get_or_create(model: type, report: DemoData, label: str, **lookup_and_defaults: Any) -> Any:
    defaults = lookup_and_defaults.pop("defaults", {})
    row, created = model.objects.get_or_create(**lookup_and_defaults, defaults=defaults)
    if created:
        report.created.append(label)
    return row


def _demo_avatar(tenant: Tenant, report: DemoData) -> Avatar:
    existing = set(Avatar.objects.filter(tenant=tenant).values_list("pk", flat=True))
    avatar = ensure_demo_avatar(tenant)
    if avatar.pk not in existing:
        report.created.append("avatar")
    return avatar


def ensure_demo_data() -> DemoData:
    """Create whatever of the demo is missing; leave everything that exists untouched."""
    with transaction.atomic():
        tenant, tenant_created = Tenant.objects.get_or_create(slug=DEMO_TENANT_SLUG, defaults={"name": "Demo"})
        report = DemoData(tenant=tenant, admin=None, member=None, role=None)
        if tenant_created:
            report.created.append(f"tenant {tenant.slug}")
        report.admin, report.admin_password = _ensure_user(ADMIN_USERNAME, superuser=True, report=report)
        report.member, report.member_password = _ensure_user(MEMBER_USERNAME, superuser=False, report=report)
        for user, level in ((report.admin, Membership.Level.OWNER), (report.member, Membership.Level.MEMBER)):
            _get_or_create(
                Membership, report, f"membership {user.username}", user=user, tenant=tenant, defaults={"level": level}
            )
        voice = _get_or_create(
            Voice,
            report,
            "voice",
            tenant=tenant,
            name=DEMO_VOICE_NAME,
            defaults={"engine": "piper", "language": Language.ENGLISH},
        )
        prompt = _get_or_create(
            Prompt, report, "prompt", tenant=tenant, name=DEMO_PROMPT_NAME, defaults={"system_text": DEMO_SYSTEM_TEXT}
        )
        zh_voice = _get_or_create(
            Voice,
            report,
            "Chinese voice",
            tenant=tenant,
            name=ZH_VOICE_NAME,
            defaults={"engine": "espeak", "language": Language.CHINESE},  # no voice_id: chosen by engine + language
        )
        zh_prompt = _get_or_create(
            Prompt,
            report,
            "Chinese prompt",
            tenant=tenant,
            name=ZH_PROMPT_NAME,
            defaults={"system_text": ZH_SYSTEM_TEXT},
        )
    # Outside the transaction: building the avatar may hand work to a Celery worker, which must see committed rows.
    avatar = _demo_avatar(tenant, report)
    with transaction.atomic():
        report.role = _ensure_role(
            tenant, report, "role", name=DEMO_ROLE_NAME, avatar=avatar, voice=voice, prompt=prompt,
            greeting=DEMO_GREETING, language=Language.ENGLISH, asr_engine="pocketsphinx",
        )  # fmt: skip
        report.chinese_role = _ensure_role(
            tenant, report, "Chinese role", name=ZH_ROLE_NAME, avatar=avatar, voice=zh_voice, prompt=zh_prompt,
            greeting=ZH_GREETING, language=Language.CHINESE, asr_engine="funasr",
        )  # fmt: skip
    return report


def _ensure_role(tenant: Tenant, report: DemoData, label: str, *, name: str, avatar: Avatar | None, **fields) -> Role:
    """The demo role ``name`` (echo LLM), created with ``fields``; an existing one only gets a late avatar."""
    role = _get_or_create(
        Role, report, label, tenant=tenant, name=name, defaults={"avatar": avatar, "llm_engine": "echo", **fields}
    )
    if role.avatar_id is None and avatar is not None:  # the avatar arrived after an earlier run
        role.avatar = avatar
        role.save(update_fields=["avatar"])
        report.created.append(f"{label} avatar")
    return role
