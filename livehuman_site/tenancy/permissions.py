"""DRF permissions built on the request's tenant scope."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import permissions

from .models import APIKeyScope
from .scoping import scope_for_request


def scopes_for_call(view: Any, method: str) -> frozenset[str]:
    """The API key scopes, any one of which lets a key call ``view`` with ``method``.

    A view names the scopes that may call it in ``api_key_scopes``, and those that may also read it in
    ``api_key_read_scopes``; a view naming none refuses every key, so a new endpoint is closed until it says.
    """
    allowed = set(getattr(view, "api_key_scopes", ()))
    if method in permissions.SAFE_METHODS:
        allowed |= set(getattr(view, "api_key_read_scopes", ()))
    return frozenset(allowed)


def scope_names(scopes: frozenset[str]) -> str:
    """Scopes as the admin names them, in the request's language."""
    return ", ".join(str(APIKeyScope(scope).label) for scope in sorted(scopes)) or "-"


class HasTenant(permissions.BasePermission):
    """Allow callers that act for a tenant: a member (session login) or an API key within its scopes; superusers
    too. A key outside its scopes gets 403 ``api_key_scope``."""

    def has_permission(self, request: Any, view: Any) -> bool:
        scope = scope_for_request(request)
        if scope.is_empty:
            return False
        if scope.api_key is None:
            return True
        needed = scopes_for_call(view, request.method)
        if needed & scope.api_key.scopes:
            return True
        self.code = "api_key_scope"
        self.message = _("This API key may not make this call: it needs the scope %(needed)s; it has %(granted)s.") % {
            "needed": scope_names(needed),
            "granted": scope_names(scope.api_key.scopes),
        }
        return False


class CanAdministerTenant(HasTenant):
    """Writes to a tenant's configuration need an owner/admin membership or an API key."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        scope = scope_for_request(request)
        return scope.api_key is not None or scope.can_administer
