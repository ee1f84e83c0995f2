"""The WebSocket origin check: foreign browser pages are refused, clients without an Origin get through to auth."""

import pytest
from channels.testing import WebsocketCommunicator

from livehuman_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def _close_code(headers: list[tuple[bytes, bytes]], scheme: str = "ws") -> int:
    """The close code the client ends up with: the validator's refusal or the consumer's own."""
    communicator = WebsocketCommunicator(application, "/ws/sessions/00000000-0000-0000-0000-000000000000/", headers)
    communicator.scope["scheme"] = scheme
    connected, code = await communicator.connect()
    while connected:
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            code = message.get("code")
            break
    await communicator.wait()
    return code


HOST = (b"host", b"livehuman.example:8443")


async def test_a_foreign_page_is_refused_before_the_consumer():
    assert await _close_code([(b"origin", b"https://evil.example")]) == 1000  # the validator's plain refusal


@pytest.mark.parametrize(
    "origin",
    [
        b"http://livehuman.example:8443",  # another scheme
        b"https://livehuman.example",  # another port
        b"https://livehuman.example:8444",
        b"https://livehuman.example.evil.example:8443",  # a look-alike host
        b"null",
    ],
)
async def test_only_the_same_scheme_host_and_port_pass(origin, settings):
    settings.ALLOWED_HOSTS = ["livehuman.example"]
    assert await _close_code([(b"origin", origin), HOST], scheme="wss") == 1000


async def test_the_same_origin_and_trusted_origins_pass(settings):
    settings.ALLOWED_HOSTS = ["livehuman.example"]
    assert await _close_code([(b"origin", b"https://livehuman.example:8443"), HOST], scheme="wss") == 4401
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.livehuman.example"]
    assert await _close_code([(b"origin", b"https://app.livehuman.example"), HOST], scheme="wss") == 4401
    # Behind a TLS-terminating proxy the socket is plain ws; the proxy's header says the page was https.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = [(b"origin", b"https://livehuman.example:8443"), HOST, (b"x-forwarded-proto", b"https")]
    assert await _close_code(forwarded) == 4401


async def test_a_client_without_origin_reaches_the_consumer_and_its_authentication():
    # No login and no API key: the consumer's own 4401 proves the origin check let the client through.
    assert await _close_code([]) == 4401


async def test_the_own_host_reaches_the_consumer():
    assert await _close_code([(b"origin", b"http://testserver"), (b"host", b"testserver")]) == 4401
