"""WebSocket authentication by ticket or API key, as a Channels middleware: the WebSocket twin of
``TenantAPIKeyAuthentication``, reading a key with the same parser (djangorestframework-api-key's).

A client sends ``?ticket=<ticket>`` (the single-use ticket in the ``ws_url`` that ``POST sessions/`` returned,
``tickets.py``), or an API key: ``Authorization: Api-Key <key>`` (or the settings' ``API_KEY_CUSTOM_HEADER``),
or ``?api_key=<key>`` where a client can neither set headers nor use a ticket. The middleware puts the outcome in
the scope for the consumer to decide:

- ``scope["api_key"]``: the usable ``TenantAPIKey`` (given, or the one a ticket acts for), or None;
- ``scope["api_key_invalid"]``: True when a key was given but is unknown, revoked or expired (refused outright,
  never treated as anonymous);
- ``scope["ticket"]``: the ticket just spent, or None; ``scope["ticket_refused"]``: the ``TicketRefused`` of a
  ticket that is unknown, used or expired, or None. A ticket issued to a logged-in user makes its user the
  scope's ``user`` and its tenant the one chosen (as a browser session's ``SESSION_TENANT_KEY`` would).

Without a ticket or a key, the session login (``AuthMiddlewareStack``'s ``scope["user"]``) applies.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from rest_framework_api_key.permissions import KeyParser

from .authentication import authenticate_api_key, usable_api_key
from .scoping import SESSION_TENANT_KEY
from .tickets import TicketRefused, redeem_ticket


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
        query = _query(scope)
        return query["api_key"][0] if query.get("api_key") else None


def _query(scope: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _key_credentials(raw_key: str | None) -> dict[str, Any]:
    api_key = authenticate_api_key(raw_key) if raw_key else None
    return {"api_key": api_key, "api_key_invalid": raw_key is not None and api_key is None}


def _ticket_credentials(token: str) -> dict[str, Any]:
    try:
        ticket = redeem_ticket(token)
    except TicketRefused as refusal:
        return {"ticket": None, "ticket_refused": refusal, "api_key": None, "api_key_invalid": False}
    credentials = {"ticket": ticket, "ticket_refused": None}
    if ticket.api_key is not None:
        api_key = usable_api_key(ticket.api_key)
        return {**credentials, "api_key": api_key, "api_key_invalid": api_key is None}
    return {
        **credentials,
        "api_key": None,
        "api_key_invalid": False,
        "user": ticket.user,
        "session": {SESSION_TENANT_KEY: ticket.tenant_id},
    }


class APIKeyAuthMiddleware(BaseMiddleware):
    """Sets the scope's credentials (above) from the connection's ticket or API key, if any."""

    key_parser = ScopeKeyParser()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        tickets = _query(scope).get("ticket")
        if tickets:
            credentials = await database_sync_to_async(_ticket_credentials)(tickets[0])
        else:
            raw_key = self.key_parser.from_scope(scope)
            credentials = await database_sync_to_async(_key_credentials)(raw_key) if raw_key else _key_credentials(None)
            credentials.update(ticket=None, ticket_refused=None)
        return await super().__call__({**scope, **credentials}, receive, send)
