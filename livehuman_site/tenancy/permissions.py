"""DRF permissions built on the request's tenant scope."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

from .scoping import scope_for_request


class HasTenant(permissions.BasePermission):
    """Allow callers that act for a tenant: a member (session login) or an API key; superusers too."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return not scope_for_request(request).is_empty


class CanAdministerTenant(HasTenant):
    """Writes to a tenant's configuration need an owner/admin membership or an API key."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        scope = scope_for_request(request)
        return scope.api_key is not None or scope.can_administer
