"""Template context: the current tenant and the ones the user may switch to."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from .models import Membership, Tenant


def current_tenant(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    scope = request.tenant_scope
    if user.is_superuser:
        choices = Tenant.objects.filter(is_active=True)
    else:
        choices = Tenant.objects.filter(is_active=True, pk__in=Membership.objects.filter(user=user).values("tenant_id"))
    return {"current_tenant": scope.tenant, "tenant_choices": choices}
