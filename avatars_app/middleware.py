"""Admin uploads over a tenant's limits refused from their Content-Length, before the body is parsed (issue 10,
Medium 5), as the REST API does (``api.UploadViewSetMixin``).

A middleware because Django's CSRF check parses a POST body (``request.POST``) before any admin view runs; this
runs before that, once the user and their tenant are known. Superusers (operators) may upload into any tenant,
named inside the body, so their uploads are checked by the forms only.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .services import check_declared_upload


class AdminUploadQuotaMiddleware:
    """Answer 413, with the quota's message, to an admin POST declaring more than the tenant may upload."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path.startswith(reverse("admin:index")):
            tenant = request.tenant_scope.tenant  # the user's current tenant, or None (CurrentTenantMiddleware)
            if tenant is not None and not request.user.is_superuser:
                try:
                    check_declared_upload(tenant, request.META)
                except ValidationError as exc:
                    return HttpResponse(exc.messages[0], status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
