"""Origin checking for WebSockets that still lets integrations in without an Origin header."""

from __future__ import annotations

from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    """Refuse a browser WebSocket from a foreign page; accept a client that sends no Origin at all.

    Browsers always send Origin on a WebSocket handshake, so the cross-site attack this check exists for
    (another page riding the user's session cookie) always carries a foreign Origin and is refused. A
    missing Origin means a non-browser client (an integration with an API key), which the consumer
    authenticates like any other.
    """

    def __init__(self, application: Any) -> None:
        allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)
