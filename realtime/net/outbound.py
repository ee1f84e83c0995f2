"""The one outbound policy: which URLs and addresses the platform may connect to on a tenant's behalf.

A tenant types URLs (an LLM base URL, a TTS server, later cloud-ASR and RTMP
endpoints) that the server then connects to. Without a policy that is a way
into the operator's network: Redis on 127.0.0.1, the cloud metadata service on
169.254.169.254, databases on 10.x. So every outbound URL is checked twice:
when it is saved (``check_url``: a field error the tenant can fix) and on every
connection against the address it resolved to then (``check_address``), so a
name that resolved to a public address at save time and to 127.0.0.1 later
(DNS rebinding) still fails. The operator opens holes on purpose with ``allow``
(a local Ollama at 127.0.0.1:11434, an intranet model server).

Django-free: the product's policy is built from settings on the Django side and
handed to engines inside their settings dataclasses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_secure import SSRFProtectionError, httpx_ssrf_protection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class OutboundRefused(ValueError):
    """A URL or a resolved address the policy refuses.

    ``code`` is stable ("bad_scheme", "credentials_in_url", "internal_address",
    "unresolvable", "bad_url"); ``str(exc)`` is an English sentence safe to show
    a tenant: it names the host, never a response body.
    """

    def __init__(self, code: str, message: str, *, host: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.host = host


def is_internal(ip: IPAddress) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified, including IPv4 hidden inside IPv6
    (mapped, NAT64, 6to4, Teredo): anything that is not a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(ip.packed[-4:])
        if embedded is not None and is_internal(embedded):
            return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


@dataclass(frozen=True)
class _AllowEntry:
    """One operator allow-list entry: a network or a host name, optionally limited to one port."""

    network: IPNetwork | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> _AllowEntry:
        text = entry.strip()
        port: int | None = None
        if text.startswith("["):  # "[::1]:8080" or "[::1]"
            inner, _, rest = text[1:].partition("]")
            text, port = inner, int(rest[1:]) if rest.startswith(":") else None
        elif text.count(":") == 1:  # "host:port" or "1.2.3.4:port" (a bare IPv6 address has several colons)
            text, _, port_text = text.partition(":")
            port = int(port_text)
        try:
            return cls(ipaddress.ip_network(text, strict=False), "", port)
        except ValueError:
            return cls(None, text.lower().rstrip("."), port)

    def matches(self, host: str, ip: IPAddress | None, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        return host.lower().rstrip(".") == self.host


def _default_port(scheme: str) -> int:
    return {"https": 443, "wss": 443, "rtmps": 443, "rtmp": 1935}.get(scheme, 80)


@dataclass(frozen=True)
class OutboundPolicy:
    """Which outbound connections are allowed: public addresses always, internal ones only when allow-listed.

    ``allow`` entries: an address or network ("127.0.0.1", "10.0.0.0/8",
    "[::1]:8080"), or a host name ("ollama.internal"), each with or without
    ":port". A host name entry trusts whatever that name resolves to.
    """

    allow: tuple[str, ...] = ()
    _entries: tuple[_AllowEntry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            entries = tuple(_AllowEntry.parse(entry) for entry in self.allow if entry.strip())
        except ValueError as exc:
            raise ValueError(f"Bad outbound allow-list entry in {self.allow!r}: {exc}") from None
        object.__setattr__(self, "_entries", entries)

    def is_allowed(self, host: str, ip: IPAddress | None, port: int) -> bool:
        return any(entry.matches(host, ip, port) for entry in self._entries)

    def check_url(self, url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> None:
        """Save-time check: scheme, no userinfo, host resolves only to public addresses unless allow-listed.

        Raises OutboundRefused. Resolves the host name (blocking): call from sync code or an executor.
        """
        host, port = self._split(url, schemes)
        if self.is_allowed(host, None, port):
            return  # a host name the operator trusts, whatever it resolves to
        for ip in self._literal_or_resolved(host, port):
            self._check_ip(host, ip, port)

    def check_address(self, host: str, ip: str, port: int) -> None:
        """Connect-time check of one resolved address (DNS rebinding). Raises OutboundRefused."""
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            raise OutboundRefused("bad_url", f"{ip!r} is not an IP address.", host=host) from None
        self._check_ip(host, address, port)

    async def resolve(self, host: str, port: int) -> str:
        """Resolve and check; returns the address to connect to (for non-httpx clients: websockets, RTMP)."""
        loop = asyncio.get_running_loop()
        addresses = await loop.run_in_executor(None, self._literal_or_resolved, host, port)
        for ip in addresses:
            self._check_ip(host, ip, port)
        return str(addresses[0])

    def http_client(self, **httpx_kwargs: Any) -> httpx.AsyncClient:
        """An httpx.AsyncClient whose every connection (redirects included) is checked against the resolved
        address; a refused one raises OutboundRefused (wrapped as httpx's error with it as the cause)."""
        client = _PolicedClient(policy=self, **httpx_kwargs)
        return httpx_ssrf_protection(
            client,
            check_globally_reachable=False,  # ``is_internal`` is stricter (multicast, 6to4, Teredo) and knows ``allow``
            custom_validator=self._admits,
        )

    def _admits(self, host: str, ip: IPAddress, port: int) -> bool:
        try:
            self._check_ip(host, ip, port)
        except OutboundRefused:
            return False
        return True

    def _check_ip(self, host: str, ip: IPAddress, port: int) -> None:
        if is_internal(ip) and not self.is_allowed(host, ip, port):
            where = f"{host} is" if host == str(ip) else f"{host} resolves to {ip},"
            raise OutboundRefused(
                "internal_address", f"{where} an internal address; the operator has not allowed it.", host=host
            )

    @staticmethod
    def _split(url: str, schemes: tuple[str, ...]) -> tuple[str, int]:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise OutboundRefused("bad_url", "This is not a valid URL.") from None
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            raise OutboundRefused("bad_scheme", f"Only {', '.join(schemes)} URLs are allowed.")
        if parts.username is not None or parts.password is not None:
            raise OutboundRefused("credentials_in_url", "A URL must not carry a user name or password.")
        host = parts.hostname or ""
        if not host or any(ch.isspace() or ord(ch) < 32 for ch in host):
            raise OutboundRefused("bad_url", "The URL has no valid host.")
        return host, port or _default_port(scheme)

    @staticmethod
    def _literal_or_resolved(host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise OutboundRefused("unresolvable", f"{host} cannot be resolved.", host=host) from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise OutboundRefused("unresolvable", f"{host} cannot be resolved.", host=host)
        return addresses


class _PolicedClient(httpx.AsyncClient):
    """An AsyncClient that reports a refused connection as httpx's error caused by the OutboundRefused.

    httpx-secure opens a connection only to the address it validated, so a
    name re-resolved to an internal address (rebinding) or a redirect to one
    never carries a byte; its own error says "failed custom validation", and
    this class attaches the policy's reason.
    """

    def __init__(self, *, policy: OutboundPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        try:
            return await super().send(request, **kwargs)
        except SSRFProtectionError as exc:
            raise exc from _refusal(self._policy, exc)


def _refusal(policy: OutboundPolicy, exc: SSRFProtectionError) -> OutboundRefused:
    if exc.ip_addr is None:
        return OutboundRefused("bad_url", f"{exc.hostname} gave no usable address.", host=exc.hostname)
    try:
        policy.check_address(exc.hostname, str(exc.ip_addr), exc.port)
    except OutboundRefused as refused:
        return refused
    return OutboundRefused("internal_address", f"{exc.hostname} was refused.", host=exc.hostname)


def refusal_of(exc: BaseException | None) -> OutboundRefused | None:
    """The OutboundRefused behind ``exc`` (itself, or the cause httpx's error carries), if there is one."""
    while exc is not None:
        if isinstance(exc, OutboundRefused):
            return exc
        exc = exc.__cause__
    return None
