"""The one place that decides which tenant a request acts for and what it may see.

Admin, REST API, chat page and WebSocket consumer all call ``scope_for_request``
(or ``scope_for_user``) and filter through ``Scope.filter``; no view filters by
tenant by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet

from .models import Membership, Tenant, TenantAPIKey, is_tenant_owned

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.contrib.sessions.backends.base import SessionBase

SESSION_TENANT_KEY = "livehuman_tenant_id"


@dataclass(frozen=True)
class Scope:
    """What one caller may see: one tenant's rows, or everything for a superuser.

    ``tenant`` is the tenant the caller acts for (new rows go there); a
    superuser's scope is ``unrestricted`` for reading but still has a tenant.
    """

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
        """Restrict a queryset to this scope.

        Works for tenant-owned models, for Tenant itself and for users (the
        members of the tenant, so a user picker never lists another tenant's
        people). Any other model raises: an unscoped list is never returned by accident.
        """
        if self.unrestricted:
            return queryset
        if self.tenant is None:
            return queryset.none()
        model = queryset.model
        if model is Tenant:
            return queryset.filter(pk=self.tenant.pk)
        if model is get_user_model():
            return queryset.filter(pk__in=Membership.objects.filter(tenant=self.tenant).values("user_id"))
        if not is_tenant_owned(model):
            raise TypeError(f"{model.__name__} is not tenant-owned and cannot be scoped")
        return queryset.filter(tenant=self.tenant)

    def owns(self, obj: Model) -> bool:
        """Whether ``obj`` (a tenant-owned row or a Tenant) is inside this scope."""
        if self.unrestricted:
            return True
        if self.tenant is None:
            return False
        if isinstance(obj, Tenant):
            return obj.pk == self.tenant.pk
        return getattr(obj, "tenant_id", None) == self.tenant.pk

    def for_tenant(self, tenant: Tenant | None) -> Scope:
        """The scope limited to ``tenant``: the choices for a row written into that tenant."""
        return Scope(tenant=tenant, level=self.level, api_key=self.api_key)


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
