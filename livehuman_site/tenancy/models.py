"""Tenants, who belongs to them, their API keys, and the base of every tenant-owned model."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

from livehuman_site.conf import livehuman_settings


def _default_max_sessions() -> int:
    return livehuman_settings.TENANT_DEFAULT_MAX_SESSIONS


def _default_max_avatars() -> int:
    return livehuman_settings.TENANT_DEFAULT_MAX_AVATARS


def _default_max_upload_mb() -> int:
    return livehuman_settings.TENANT_DEFAULT_MAX_UPLOAD_MB


def _default_max_storage_mb() -> int:
    return livehuman_settings.TENANT_DEFAULT_MAX_STORAGE_MB


class Tenant(models.Model):
    """A customer of the platform: owns roles, avatars, sessions, and sets their limits."""

    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("slug"), unique=True)
    is_active = models.BooleanField(_("active"), default=True)
    max_concurrent_sessions = models.PositiveIntegerField(_("max concurrent sessions"), default=_default_max_sessions)
    max_avatars = models.PositiveIntegerField(_("max avatars"), default=_default_max_avatars)
    max_upload_mb = models.PositiveIntegerField(_("max upload size (MB)"), default=_default_max_upload_mb)
    max_storage_mb = models.PositiveIntegerField(
        _("disk quota (MB)"),
        default=_default_max_storage_mb,
        help_text=_("Everything the tenant stores: uploads and built avatar bundles."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_storage_bytes(self) -> int:
        return self.max_storage_mb * 1024 * 1024


class Membership(models.Model):
    """A user's place in a tenant. Owners and admins use the admin; members use the chat page."""

    class Level(models.TextChoices):
        OWNER = "owner", _("owner")
        ADMIN = "admin", _("admin")
        MEMBER = "member", _("member")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("tenant"))
    level = models.CharField(_("level"), max_length=10, choices=Level.choices, default=Level.MEMBER)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.level})"

    @property
    def can_administer(self) -> bool:
        return self.level in {self.Level.OWNER, self.Level.ADMIN}


@cache
def is_tenant_owned(model: type[models.Model]) -> bool:
    """True for a model whose rows belong to one tenant through a ``tenant`` foreign key.

    That covers every ``TenantOwnedModel`` and also ``TenantAPIKey`` and
    ``Membership``, whose base classes come from elsewhere.
    """
    try:
        field = model._meta.get_field("tenant")
    except FieldDoesNotExist:
        return False
    return isinstance(field, models.ForeignKey) and field.remote_field.model is Tenant


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | None) -> TenantQuerySet:
        return self.filter(tenant=tenant) if tenant is not None else self.none()


class TenantOwnedModel(models.Model):
    """Base of every row a tenant owns.

    Scoping (``scoping.Scope``) filters on ``tenant``; ``clean`` refuses a link
    to another tenant's row, so neither the admin nor the API can create one.
    """

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="%(app_label)s_%(class)s_set", verbose_name=_("tenant")
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True

    def clean(self) -> None:
        super().clean()
        if self.tenant_id is None:
            return
        for field in self._meta.concrete_fields:
            if not field.is_relation or field.name == "tenant":
                continue
            related = getattr(self, field.name, None)
            if related is not None and is_tenant_owned(type(related)) and related.tenant_id != self.tenant_id:
                raise ValidationError({field.name: _("This belongs to another tenant.")})


class APIKeyScope(models.TextChoices):
    """What an API key may do. A view names the scopes that may call it (``api_key_scopes``)."""

    SESSIONS = "sessions", _("sessions")
    CONFIGURATION = "configuration", _("configuration")


class TenantAPIKey(AbstractAPIKey):
    """An integration's key: shown once at creation, stored hashed, revocable; it acts for one tenant, within its
    scopes. A new key runs sessions only: a key that leaks from a client cannot rewrite the tenant's roles."""

    # The library's fields again, with labels in the admin user's language: its own are English only (no
    # verbose_name, or strings no catalog of ours would keep). Only labels and help differ from the library's.
    prefix = models.CharField(_("prefix"), max_length=8, unique=True, editable=False)
    created = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    name = models.CharField(
        _("name"),
        max_length=50,
        blank=False,
        default=None,
        help_text=_("A free-form name for the API key. Need not be unique. 50 characters max."),
    )
    revoked = models.BooleanField(
        _("revoked"),
        blank=True,
        default=False,
        help_text=_("If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)"),
    )
    expiry_date = models.DateTimeField(
        _("expires"), blank=True, null=True, help_text=_("Once API key expires, clients cannot use it anymore.")
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("tenant"))
    scope_sessions = models.BooleanField(
        _("sessions"),
        default=True,
        help_text=_("Start, drive and end sessions (REST and WebSocket); read roles."),
    )
    scope_configuration = models.BooleanField(
        _("configuration"),
        default=False,
        help_text=_("Create, change and delete voices, prompts, avatars and roles."),
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(
            scope
            for scope, granted in (
                (APIKeyScope.SESSIONS, self.scope_sessions),
                (APIKeyScope.CONFIGURATION, self.scope_configuration),
            )
            if granted
        )

    def clean(self) -> None:
        super().clean()
        if not self.scopes:
            raise ValidationError(_("Give the key at least one scope."))


class WebSocketTicket(models.Model):
    """A single-use, short-lived pass that opens one session's WebSocket (``tickets.py``). Only its hash is stored;
    it acts for the API key or the user that started the session, in that session's tenant."""

    token_hash = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session_id = models.UUIDField()  # the ChatSession it opens (sessions_app is a floor above: no foreign key)
    api_key = models.ForeignKey(TenantAPIKey, on_delete=models.CASCADE, null=True, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, related_name="+")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True)
