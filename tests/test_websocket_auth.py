"""The WebSocket API-key middleware: the same key parser as the REST API, over an ASGI scope."""

from __future__ import annotations

import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.testing import WebsocketCommunicator

from livehuman_site.tenancy.websocket_auth import APIKeyAuthMiddleware

pytestmark = pytest.mark.django_db(transaction=True)


class ScopeEcho(AsyncJsonWebsocketConsumer):
    """Says what the middleware put in the scope."""

    async def connect(self) -> None:
        await self.accept()
        api_key = self.scope["api_key"]
        await self.send_json({"key": api_key and api_key.name, "invalid": self.scope["api_key_invalid"]})


async def scope_seen(path: str = "/", headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    communicator = WebsocketCommunicator(APIKeyAuthMiddleware(ScopeEcho.as_asgi()), path, headers=headers or [])
    assert (await communicator.connect())[0]
    try:
        return await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()


async def test_the_authorization_header_and_the_query_both_carry_a_key(world_a):
    header = [(b"authorization", f"Api-Key {world_a.raw_key}".encode())]
    assert await scope_seen(headers=header) == {"key": "acme integration", "invalid": False}
    assert await scope_seen(f"/?api_key={world_a.raw_key}") == {"key": "acme integration", "invalid": False}


async def test_no_key_is_anonymous_and_a_bad_or_revoked_key_is_flagged(world_a):
    assert await scope_seen() == {"key": None, "invalid": False}
    assert await scope_seen("/?api_key=nope.nope") == {"key": None, "invalid": True}
    assert await scope_seen(headers=[(b"authorization", b"Api-Key nope.nope")]) == {"key": None, "invalid": True}
    world_a.api_key.revoked = True
    await world_a.api_key.asave()
    assert await scope_seen(f"/?api_key={world_a.raw_key}") == {"key": None, "invalid": True}


async def test_the_custom_header_setting_of_the_key_parser_applies(world_a, settings):
    settings.API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"
    assert await scope_seen(headers=[(b"x-api-key", world_a.raw_key.encode())]) == {
        "key": "acme integration",
        "invalid": False,
    }
