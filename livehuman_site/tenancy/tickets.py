"""Single-use, short-lived WebSocket tickets (issue 10, Low 12).

``POST sessions/`` returns one in ``ws_url``, so neither a browser nor an integration puts a long-lived API key
in a URL (URLs end up in proxy logs, browser history and monitoring). A ticket opens one session's WebSocket,
once, within ``WS_TICKET_TTL_S``, acting for the API key or the user that asked for it, in that session's tenant.

Tickets live in the database, so whichever daphne process gets the connection can redeem one; redeeming is one
conditional UPDATE, so two connections cannot both use it. Only a hash of the ticket is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.utils import timezone
from django.utils.translation import gettext as _

from livehuman_site.conf import livehuman_settings

from .models import Tenant, TenantAPIKey, WebSocketTicket

TOKEN_BYTES = 32
KEEP_SPENT = timedelta(hours=1)  # a spent or expired ticket is still recognised (and named so) this long


class TicketRefused(Exception):
    """A ticket that cannot open a connection: ``code`` says why (unknown, used, expired)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_ticket(*, tenant: Tenant, session_id: UUID, api_key: TenantAPIKey | None, user: Any) -> str:
    """A new ticket for ``session_id``, acting for ``api_key`` or else ``user``; returned once, stored hashed."""
    now = timezone.now()
    WebSocketTicket.objects.filter(expires_at__lt=now - KEEP_SPENT).delete()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    WebSocketTicket.objects.create(
        token_hash=_hash(token),
        tenant=tenant,
        session_id=session_id,
        api_key=api_key,
        user=user if api_key is None and user is not None and user.is_authenticated else None,
        expires_at=now + timedelta(seconds=livehuman_settings.WS_TICKET_TTL_S),
    )
    return token


def redeem_ticket(token: str) -> WebSocketTicket:
    """Spend the ticket ``token`` and return it; raises ``TicketRefused`` if it is unknown, used or expired."""
    now = timezone.now()
    tickets = WebSocketTicket.objects.filter(token_hash=_hash(token))
    if tickets.filter(used_at__isnull=True, expires_at__gt=now).update(used_at=now) == 1:
        return tickets.select_related("api_key__tenant", "user", "tenant").get()
    ticket = tickets.first()
    if ticket is None:
        raise TicketRefused("ticket_unknown", _("Unknown ticket: start a session to get one."))
    if ticket.used_at is not None:
        raise TicketRefused("ticket_used", _("This ticket was used already: a ticket opens one connection."))
    raise TicketRefused(
        "ticket_expired",
        _("This ticket has expired: a ticket is valid for %(seconds)d seconds.")
        % {"seconds": livehuman_settings.WS_TICKET_TTL_S},
    )
