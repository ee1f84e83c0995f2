"""WebSocket authentication by API key, as a Channels middleware: the WebSocket twin of
``TenantAPIKeyAuthentication``, reading the key with the same parser (djangorestframework-api-key's).

An integration sends ``Authorization: Api-Key <key>`` (or the settings'
``API_KEY_CUSTOM_HEADER``), or ``?api_key=<key>`` where a client cannot set
headers. The middleware puts the outcome in the scope for the consumer to decide:
``scope["api_key"]`` is the usable ``TenantAPIKey`` or None, and
``scope["api_key_invalid"]`` is True when a key was given but is unknown,
revoked or expired (refused outright, never treated as anonymous). Without a
key, the session login (``AuthMiddlewareStack``'s ``scope["user"]``) applies.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from rest_framework_api_key.permissions import KeyParser

from .authentication import authenticate_api_key


class ScopeKeyParser(KeyParser):
    """``KeyParser`` over an ASGI scope: its headers as a request's ``META``, then the ``api_key`` query value."""

    def from_scope(self, scope: dict[str, Any]) -> str | None:
        meta = {
            "HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        key = self.get(SimpleNamespace(META=meta))
        if key:
            return key.strip()
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return query["api_key"][0] if query.get("api_key") else None


class APIKeyAuthMiddleware(BaseMiddleware):
    """Sets ``scope["api_key"]`` and ``scope["api_key_invalid"]`` from the connection's API key, if any."""

    key_parser = ScopeKeyParser()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw_key = self.key_parser.from_scope(scope)
        api_key = await database_sync_to_async(authenticate_api_key)(raw_key) if raw_key else None
        scope = {**scope, "api_key": api_key, "api_key_invalid": raw_key is not None and api_key is None}
        return await super().__call__(scope, receive, send)
