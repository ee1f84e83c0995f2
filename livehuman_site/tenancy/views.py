"""Switching the current tenant of a browser session, and serving a tenant's uploaded files to that tenant only."""

from __future__ import annotations

import posixpath
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.static import serve
from rest_framework_api_key.permissions import KeyParser

from .authentication import authenticate_api_key
from .models import APIKeyScope, Tenant
from .scoping import EMPTY_SCOPE, Scope, scope_for_api_key, scope_for_request, switch_tenant

# Uploads live under tenants/<tenant id>/ (see avatars_app.models._tenant_upload_path).
_TENANT_PATH = re.compile(r"^tenants/(?P<tenant_id>\d+)/")

# Types a browser only displays or plays, never runs: these may be shown inline; anything else is a download.
PASSIVE_MEDIA_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "audio/wav",
        "audio/x-wav",
        "audio/mpeg",
        "audio/ogg",
        "audio/flac",
        "audio/mp4",
        "video/mp4",
        "video/quicktime",
        "video/webm",
        "video/x-matroska",
        "video/x-msvideo",
    }
)
# A tenant's file is data, never a page of this origin: even if a browser renders it, it runs in a sandbox
# without scripts, plugins, forms or this origin's cookies.
TENANT_FILE_CSP = "sandbox; default-src 'none'"


@login_required
@require_POST
def switch_tenant_view(request: HttpRequest) -> HttpResponse:
    try:
        tenant_id = int(request.POST.get("tenant", ""))
    except ValueError:
        tenant_id = -1
    if not switch_tenant(request.session, request.user, tenant_id):
        messages.error(request, _("You are not a member of that tenant."))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "chat"
    return redirect(target)


def _media_scope(request: HttpRequest) -> Scope:
    """The caller's scope from a browser login or, for integrations, an ``Authorization: Api-Key`` header. The
    files are uploads of voices and avatars: a key reads them only with the configuration scope."""
    key = KeyParser().get(request)
    if key:
        api_key = authenticate_api_key(key)
        if api_key is None or APIKeyScope.CONFIGURATION not in api_key.scopes:
            return EMPTY_SCOPE
        return scope_for_api_key(api_key)
    return scope_for_request(request)


@require_GET
def tenant_media_view(request: HttpRequest, path: str) -> HttpResponse:
    """A file under MEDIA_ROOT, for the tenant that owns it (and superusers); everyone else gets a 404.

    Files outside ``tenants/<id>/`` (avatar bundles) are read by the workers from disk, never over HTTP.
    In production a web server may serve MEDIA_ROOT instead, behind the same check (e.g. X-Accel-Redirect).
    """
    path = posixpath.normpath(path).lstrip("/")  # the tenant check must see the path serve() will open
    match = _TENANT_PATH.match(path)
    if match is None:
        raise Http404
    tenant = Tenant.objects.filter(pk=int(match["tenant_id"])).first()
    if tenant is None or not _media_scope(request).owns(tenant):
        raise Http404
    return _as_tenant_file(serve(request, path, document_root=settings.MEDIA_ROOT), path)


def _as_tenant_file(response: HttpResponse, path: str) -> HttpResponse:
    """Headers that keep an uploaded file from acting as a page of the platform (issue 10, High 1)."""
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in PASSIVE_MEDIA_TYPES:
        response["Content-Type"] = "application/octet-stream"
        response["Content-Disposition"] = content_disposition_header(True, posixpath.basename(path))
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = TENANT_FILE_CSP
    return response
