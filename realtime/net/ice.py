"""ICE servers for both ends of a call: static STUN/TURN entries and time-limited TURN REST credentials.

A client behind NAT reaches the server's peer through a TURN relay. Long-lived TURN passwords handed to every
browser would be copied; the TURN REST scheme (coturn's ``use-auth-secret``) gives each call its own credentials
instead: the username is ``<expiry unix time>:<user>`` and the password is base64(HMAC-SHA1(shared secret,
username)), which the TURN server checks with the same secret and refuses after the expiry. The page and the
server's aiortc peer each get a set from ``ice_servers``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

TRANSPORT_POLICIES = ("all", "relay")


@dataclass(frozen=True, kw_only=True)
class IceSettings:
    """Where peers look for a path to each other.

    ``servers`` are given as they are (``{"urls": [...], "username"?, "credential"?}``, the browser's shape);
    ``turn_urls`` get fresh REST credentials from ``turn_secret`` on each call, valid ``turn_ttl_s`` seconds.
    ``transport_policy`` "relay" makes both peers use only TURN relays (clients that must not reveal their
    addresses, or tests that prove the relay works). No defaults: the session factory fills them from the
    ICE_*/TURN_* settings.
    """

    servers: tuple[Mapping[str, Any], ...]
    turn_urls: tuple[str, ...]
    turn_secret: str
    turn_ttl_s: int
    transport_policy: str

    def __post_init__(self) -> None:
        if self.transport_policy not in TRANSPORT_POLICIES:
            raise ValueError(f"ICE transport policy must be one of {TRANSPORT_POLICIES}, not {self.transport_policy!r}")
        if self.turn_urls and not self.turn_secret:
            raise ValueError("TURN URLs with REST credentials need the TURN server's shared secret")
        if self.turn_ttl_s <= 0:
            raise ValueError("TURN credentials need a positive lifetime")


def turn_rest_credentials(secret: str, user: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """A (username, password) pair the TURN server accepts until ``now + ttl_s`` (coturn's use-auth-secret)."""
    expiry = int(now if now is not None else time.time()) + ttl_s
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(settings: IceSettings, user: str, now: float | None = None) -> list[dict[str, Any]]:
    """The ICE servers for one peer of one call, in the browser's ``RTCIceServer`` shape."""
    servers = [dict(server) for server in settings.servers]
    if settings.turn_urls:
        username, credential = turn_rest_credentials(settings.turn_secret, user, settings.turn_ttl_s, now)
        servers.append({"urls": list(settings.turn_urls), "username": username, "credential": credential})
    return servers


def rtc_configuration(
    servers: list[Mapping[str, Any]] | tuple[Mapping[str, Any], ...], policy: str
) -> RTCConfiguration:
    """aiortc's configuration for the server's peer: the same servers and policy the page gets."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(**server) for server in servers],
        iceTransportPolicy=RTCIceTransportPolicy(policy),
    )
