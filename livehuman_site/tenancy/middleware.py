"""Attach the current tenant scope to every request, lazily."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject

from .scoping import scope_for_user


class CurrentTenantMiddleware:
    """Sets ``request.tenant_scope`` (a ``Scope``) and ``request.tenant`` from the logged-in user."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        scope = SimpleLazyObject(lambda: scope_for_user(request.user, request.session))
        request.tenant_scope = scope
        request.tenant = SimpleLazyObject(lambda: scope.tenant)
        return self.get_response(request)
