"""The one place that decides which tenant a request acts for and what it may see.

Admin, REST API, chat page and WebSocket consumer all call ``scope_for_request``
(or ``scope_for_user``) and filter through ``Scope.filter``; no view filters by
tenant by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet

from .models import Membership, Tenant, TenantAPIKey, TenantOwnedModel

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.contrib.sessions.backends.base import SessionBase

SESSION_TENANT_KEY = "livehuman_tenant_id"


@dataclass(frozen=True)
class Scope:
    """What one caller may see: one tenant's rows, or everything for a superuser."""

    tenant: Tenant | None
    level: str | None = None
    unrestricted: bool = False
    api_key: TenantAPIKey | None = None

    @property
    def is_empty(self) -> bool:
        return self.tenant is None and not self.unrestricted

    @property
    def can_administer(self) -> bool:
        return self.unrestricted or self.level in {Membership.Level.OWNER, Membership.Level.ADMIN}

    def filter(self, queryset: QuerySet) -> QuerySet:
        """Restrict a queryset of a tenant-owned model (or of Tenant itself) to this scope."""
        if self.unrestricted:
            return queryset
        if self.tenant is None:
            return queryset.none()
        if queryset.model is Tenant:
            return queryset.filter(pk=self.tenant.pk)
        if not issubclass(queryset.model, TenantOwnedModel):
            raise TypeError(f"{queryset.model.__name__} is not tenant-owned and cannot be scoped")
        return queryset.filter(tenant=self.tenant)

    def owns(self, obj: Model) -> bool:
        return self.unrestricted or (self.tenant is not None and getattr(obj, "tenant_id", None) == self.tenant.pk)


EMPTY_SCOPE = Scope(tenant=None)


def scope_for_user(user: AbstractBaseUser | AnonymousUser, session: SessionBase | None = None) -> Scope:
    """A logged-in user's scope: the tenant chosen in this browser session, else their first membership."""
    if not user.is_authenticated or not user.is_active:
        return EMPTY_SCOPE
    memberships = Membership.objects.filter(user=user, tenant__is_active=True).select_related("tenant")
    chosen_id = session.get(SESSION_TENANT_KEY) if session is not None else None
    membership = None
    if chosen_id is not None:
        membership = memberships.filter(tenant_id=chosen_id).first()
    if membership is None:
        membership = memberships.order_by("tenant__name").first()
    if user.is_superuser:
        tenant = membership.tenant if membership else _superuser_tenant(chosen_id)
        return Scope(tenant=tenant, level=Membership.Level.OWNER, unrestricted=True)
    if membership is None:
        return EMPTY_SCOPE
    return Scope(tenant=membership.tenant, level=membership.level)


def _superuser_tenant(chosen_id: Any) -> Tenant | None:
    tenants = Tenant.objects.filter(is_active=True)
    return (tenants.filter(pk=chosen_id).first() if chosen_id else None) or tenants.first()


def scope_for_api_key(api_key: TenantAPIKey) -> Scope:
    if not api_key.tenant.is_active:
        return EMPTY_SCOPE
    return Scope(tenant=api_key.tenant, level=Membership.Level.MEMBER, api_key=api_key)


def scope_for_request(request: Any) -> Scope:
    """The scope of an HttpRequest, or of a DRF Request (which may carry an API key as ``auth``)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, TenantAPIKey):
        return scope_for_api_key(auth)
    scope = getattr(request, "tenant_scope", None)
    if scope is None:
        scope = scope_for_user(request.user, getattr(request, "session", None))
    return scope


def switch_tenant(session: SessionBase, user: AbstractBaseUser, tenant_id: int) -> bool:
    """Make ``tenant_id`` the current tenant of this browser session, if the user belongs to it."""
    allowed = user.is_superuser or Membership.objects.filter(user=user, tenant_id=tenant_id).exists()
    if allowed and Tenant.objects.filter(pk=tenant_id, is_active=True).exists():
        session[SESSION_TENANT_KEY] = tenant_id
        return True
    return False
