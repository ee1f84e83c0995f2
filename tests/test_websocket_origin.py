"""The WebSocket origin check: foreign browser pages are refused, clients without an Origin get through to auth."""

import pytest
from channels.testing import WebsocketCommunicator

from livehuman_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def _close_code(headers: list[tuple[bytes, bytes]]) -> int:
    """The close code the client ends up with: the validator's refusal or the consumer's own."""
    communicator = WebsocketCommunicator(application, "/ws/sessions/00000000-0000-0000-0000-000000000000/", headers)
    connected, code = await communicator.connect()
    while connected:
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            code = message.get("code")
            break
    await communicator.wait()
    return code


async def test_a_foreign_page_is_refused_before_the_consumer():
    assert await _close_code([(b"origin", b"https://evil.example")]) == 1000  # the validator's plain refusal


async def test_a_client_without_origin_reaches_the_consumer_and_its_authentication():
    # No login and no API key: the consumer's own 4401 proves the origin check let the client through.
    assert await _close_code([]) == 4401


async def test_the_own_host_reaches_the_consumer():
    assert await _close_code([(b"origin", b"http://testserver")]) == 4401
