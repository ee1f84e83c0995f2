"""DRF authentication by per-tenant API key: ``Authorization: Api-Key <key>``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework_api_key.permissions import KeyParser

from .models import TenantAPIKey


class TenantAPIKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate an integration; ``request.auth`` becomes its ``TenantAPIKey``.

    A header that names an API key but holds a revoked, expired or unknown key
    is refused outright rather than treated as anonymous.
    """

    key_parser = KeyParser()

    def authenticate(self, request: Any) -> tuple[AnonymousUser, TenantAPIKey] | None:
        key = self.key_parser.get(request)
        if not key:
            return None
        api_key = authenticate_api_key(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed(_("Invalid, revoked or expired API key."))
        return AnonymousUser(), api_key

    def authenticate_header(self, request: Any) -> str:
        return self.key_parser.keyword


def authenticate_api_key(key: str) -> TenantAPIKey | None:
    """The usable key matching ``key``, or None (also used by the WebSocket consumer)."""
    try:
        return usable_api_key(TenantAPIKey.objects.get_from_key(key))
    except TenantAPIKey.DoesNotExist:
        return None


def usable_api_key(api_key: TenantAPIKey) -> TenantAPIKey | None:
    """``api_key`` if it may act now: not revoked, not expired, its tenant active."""
    if api_key.revoked or api_key.has_expired or not api_key.tenant.is_active:
        return None
    return api_key


class TenantAPIKeyScheme(OpenApiAuthenticationExtension):
    """Documents the key in the OpenAPI schema, so the docs page can send it ("Authorize")."""

    target_class = TenantAPIKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                'A tenant\'s API key, sent as "Api-Key <key>"; created in the admin with its scopes: "sessions" '
                '(sessions and their WebSocket; reading roles) and/or "configuration" (voices, prompts, avatars, '
                "roles). A call outside the key's scopes is 403 api_key_scope."
            ),
        }
