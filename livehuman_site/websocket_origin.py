"""Origin checking for WebSockets that still lets integrations in without an Origin header."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, with the scheme's default port filled in; None if unparsable."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return scheme, parts.hostname.lower(), port


class BrowserOriginValidator:
    """Refuse a browser WebSocket from a foreign page; accept a client that sends no Origin at all.

    A page's origin must equal this server's own, scheme, host and port alike (the
    handshake's Host, with https when the socket is wss or the trusted proxy says
    so), or be one of CSRF_TRUSTED_ORIGINS: an http:// page, another port on the
    same host or a look-alike host is refused. Browsers always send Origin on a
    WebSocket handshake, so the cross-site attack this check exists for always
    carries a foreign Origin. A missing Origin means a non-browser client (an
    integration with an API key), which the consumer authenticates like any other.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        if origin is None or self.allowed(origin.decode("latin-1"), scope, headers):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)

    @staticmethod
    def allowed(origin: str, scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
        parts = urlsplit(origin)
        claimed = _origin(parts.scheme.lower(), parts.netloc)
        if claimed is None:
            return False
        trusted = {_origin(*url.split("://", 1)) for url in settings.CSRF_TRUSTED_ORIGINS if "://" in url}
        if claimed in trusted:
            return True
        host = headers.get(b"host")
        if host is None:
            return False
        secure = scope.get("scheme") == "wss"
        proxy = settings.SECURE_PROXY_SSL_HEADER
        if proxy:
            name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
            secure = secure or headers.get(name, b"").decode("latin-1") == proxy[1]
        return claimed == _origin("https" if secure else "http", host.decode("latin-1"))
