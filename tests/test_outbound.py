"""The outbound policy (issue 10, High 3): tenant URLs may not reach internal addresses, at save or at connect.

Local servers stand in for an internal service: one on 127.0.0.1 that is not
allow-listed must receive nothing (not even a TCP connection); allow-listed, it
is reached. Save-time checks go through the real REST API and admin.
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from aiohttp import web
from django.test import Client
from rest_framework.test import APIClient

from avatars_app.models import Role, Voice
from livehuman_site.outbound import outbound_policy
from realtime.engines.llm.base import LLMError, LLMErrorCode
from realtime.engines.llm.openai_compat import OpenAICompatibleLLM
from realtime.engines.registry import engine_class
from realtime.engines.tts.base import TTSError, VoiceSettings
from realtime.engines.tts.gpt_sovits import GPTSoVITSTTS
from realtime.net.outbound import OutboundPolicy, OutboundRefused, refusal_of
from sessions_app.session_factory import conversation_settings
from testkit.defaults import llm_settings
from testkit.outbound import allow_entry
from tests.fixtures.chat_server import ChatServer

INTERNAL_URLS = [
    "http://127.0.0.1:6379/",
    "http://localhost:11434/v1",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/",
    "http://10.1.2.3/v1",
    "http://192.168.0.10/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://224.0.0.1/",  # multicast
    "http://0.0.0.0:9880/",
]


class CountingServer:
    """A TCP listener on 127.0.0.1 that counts connections and answers any HTTP request with a redirect or 200."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self.redirect_to = redirect_to
        self.server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> CountingServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.decode("latin-1"))
        if self.redirect_to:
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {self.redirect_to}\r\nContent-Length: 0\r\n\r\n".encode())
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()


# ------------------------------------------------------------------------------------------------ the policy


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_addresses_are_refused_unless_allow_listed(url):
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().check_url(url)
    assert refused.value.code == "internal_address"
    OutboundPolicy(allow=("127.0.0.0/8", "::/0", "0.0.0.0/0", "localhost")).check_url(url)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.org/", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("gopher://127.0.0.1:6379/", "bad_scheme"),
        ("http://user:secret@8.8.8.8/", "credentials_in_url"),
        ("http://8.8.8.8:99999/", "bad_url"),
        ("http:///nohost", "bad_url"),
        ("http://no-such-host.invalid/", "unresolvable"),
    ],
)
def test_scheme_credentials_and_hosts_are_checked(url, code):
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().check_url(url)
    assert refused.value.code == code
    assert "secret" not in str(refused.value)


def test_allow_list_entries_limit_the_port():
    policy = OutboundPolicy(allow=("127.0.0.1:11434", "[::1]:9880", "ollama.internal"))
    policy.check_url("http://127.0.0.1:11434/v1")
    policy.check_url("http://[::1]:9880/")
    for refused in ("http://127.0.0.1:6379/", "http://[::1]:6379/", "http://127.0.0.2:11434/"):
        with pytest.raises(OutboundRefused):
            policy.check_url(refused)
    policy.check_address("ollama.internal", "10.0.0.5", 443)  # a trusted name, whatever it resolves to
    with pytest.raises(OutboundRefused):
        policy.check_address("evil.example", "10.0.0.5", 443)


def test_public_addresses_pass():
    OutboundPolicy().check_url("https://8.8.8.8/v1")
    OutboundPolicy().check_address("dashscope.aliyuncs.com", "47.93.1.1", 443)


def test_the_product_policy_comes_from_settings(settings):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": ["127.0.0.1:11434"]}
    outbound_policy().check_url("http://127.0.0.1:11434/v1")
    with pytest.raises(OutboundRefused):
        outbound_policy().check_url("http://127.0.0.1:6379/")


# ------------------------------------------------------------------------------------------ at connection


async def test_a_server_on_loopback_that_is_not_allow_listed_receives_nothing():
    async with CountingServer() as server:
        async with OutboundPolicy().http_client() as client:
            with pytest.raises(httpx.HTTPError) as raised:
                await client.get(server.url + "/")
        assert refusal_of(raised.value).code == "internal_address"
        assert server.connections == 0
        async with OutboundPolicy(allow=(allow_entry(server.url),)).http_client() as client:
            assert (await client.get(server.url + "/")).text == "ok"
        assert server.connections == 1


async def test_a_redirect_to_a_refused_address_fails_and_reaches_nothing():
    async with CountingServer() as inner, CountingServer() as outer:
        outer.redirect_to = inner.url + "/secret"
        policy = OutboundPolicy(allow=(allow_entry(outer.url),))
        async with policy.http_client(follow_redirects=True) as client:
            with pytest.raises(httpx.HTTPError) as raised:
                await client.get(outer.url + "/")
        assert refusal_of(raised.value).code == "internal_address"
        assert outer.connections == 1 and inner.connections == 0


async def test_a_name_that_rebinds_to_loopback_after_the_save_check_is_refused(monkeypatch):
    async with CountingServer() as server:
        port = server.server.sockets[0].getsockname()[1]
        answers = iter(["8.8.8.8", "127.0.0.1", "127.0.0.1", "127.0.0.1"])
        real = socket.getaddrinfo

        def rebinding(host, *args, **kwargs):
            if host in ("rebind.example", b"rebind.example"):  # anyio passes the name IDNA-encoded
                return real(next(answers), *args, **kwargs)
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        policy = OutboundPolicy()
        policy.check_url(f"http://rebind.example:{port}/v1")  # a public address when saved
        with pytest.raises(OutboundRefused):
            await policy.resolve("rebind.example", port)
        async with policy.http_client() as client:
            with pytest.raises(httpx.HTTPError) as raised:
                await client.get(f"http://rebind.example:{port}/v1")
        assert refusal_of(raised.value).code == "internal_address"
        assert server.requests == []  # at most a bare TCP probe, never a byte of the request


async def test_the_llm_engine_does_not_reach_a_loopback_server_that_is_not_allow_listed():
    async with ChatServer() as server:
        engine = OpenAICompatibleLLM(llm_settings(base_url=server.base_url, api_key="sk-x", timeout_s=5))
        with pytest.raises(LLMError) as raised:
            [delta async for delta in engine.stream([{"role": "user", "content": "Hi"}])]
        await engine.aclose()
        assert raised.value.code == LLMErrorCode.REFUSED and server.requests == []
        allowed = OpenAICompatibleLLM(llm_settings(base_url=server.base_url, timeout_s=5, outbound=server.policy))
        assert "".join([delta async for delta in allowed.stream([{"role": "user", "content": "Hi"}])])
        await allowed.aclose()
        assert len(server.requests) == 1


async def test_gpt_sovits_does_not_reach_a_loopback_server_that_is_not_allow_listed():
    hits: list[str] = []

    async def tts(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=500, text="unreachable on purpose")

    app = web.Application()
    app.router.add_post("/tts", tts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        for outbound, expected in ((OutboundPolicy(), "refused"), (OutboundPolicy(allow=(allow_entry(url),)), "500")):
            engine = GPTSoVITSTTS(VoiceSettings(server_url=url, outbound=outbound), timeout_s=5)
            with pytest.raises(TTSError, match=expected) as raised:
                [pcm async for pcm in engine.synthesize("你好")]
            await engine.aclose()
            assert "unreachable on purpose" not in str(raised.value)
    finally:
        await runner.cleanup()
    assert hits == ["/tts"]  # only the allow-listed attempt arrived


# ---------------------------------------------------------------------------------------------- at save


@pytest.fixture
def voice(world_a) -> Voice:
    return Voice.objects.create(tenant=world_a.tenant, name="Joe", engine="piper", language="en")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "http://169.254.169.254/latest/", "http://[::1]:8080/"])
def test_the_api_refuses_internal_llm_and_tts_urls_with_a_field_error(owner, voice, url, settings):
    settings.LANGUAGE_CODE = "en"
    role = owner.post(
        "/api/v1/roles/",
        {"name": "R", "voice": voice.pk, "llm_engine": "dify", "llm_base_url": url},
        format="json",
    )
    assert role.status_code == 400
    assert "internal address" in role.json()["error"]["fields"]["llm_base_url"][0]
    sovits = owner.post("/api/v1/voices/", {"name": "V", "engine": "gpt_sovits", "server_url": url}, format="json")
    assert sovits.status_code == 400 and "server_url" in sovits.json()["error"]["fields"]
    assert not Role.objects.exists() and Voice.objects.count() == 1


def test_field_errors_are_in_the_users_language(owner, voice):
    response = owner.post(
        "/api/v1/roles/",
        {"name": "R", "voice": voice.pk, "llm_engine": "openai", "llm_base_url": "http://10.0.0.1/v1"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400
    assert "内部地址" in response.json()["error"]["fields"]["llm_base_url"][0]


def test_an_allow_listed_address_is_accepted(owner, voice, settings):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": ["127.0.0.1:11434"]}
    response = owner.post(
        "/api/v1/roles/",
        {"name": "R", "voice": voice.pk, "llm_engine": "openai", "llm_base_url": "http://127.0.0.1:11434/v1"},
        format="json",
    )
    assert response.status_code == 201, response.json()


def test_the_admin_refuses_an_internal_server_url(world_a, settings):
    settings.LANGUAGE_CODE = "en"
    client = Client()
    client.force_login(world_a.owner)
    data = {"name": "V", "engine": "gpt_sovits", "language": "en", "rate": 1, "pitch": 0, "volume": 1}
    response = client.post("/admin/avatars_app/voice/add/", {**data, "server_url": "http://169.254.169.254/"})
    assert response.status_code == 200 and "internal address" in response.content.decode()
    assert not Voice.objects.exists()


# ------------------------------------------------------------------------------- the key and the base URL


async def _ask(role: Role) -> None:
    """Run the role's LLM engine as a session would, from the settings the session factory builds."""
    settings = conversation_settings(role, session_id="s1")
    engine = engine_class("llm", settings.llm_engine)(settings.llm)
    try:
        [delta async for delta in engine.stream([{"role": "user", "content": "Hi"}])]
    finally:
        await engine.aclose()


@pytest.mark.django_db(transaction=True)
async def test_a_new_base_url_without_a_new_key_does_not_get_the_stored_key(world_a, settings):
    from asgiref.sync import sync_to_async

    async with ChatServer() as first, ChatServer() as second:
        settings.LIVEHUMAN = {
            **settings.LIVEHUMAN,
            "OUTBOUND_ALLOW": [allow_entry(first.base_url), allow_entry(second.base_url)],
        }

        @sync_to_async
        def create_and_move() -> tuple[Role, Role, dict]:
            voice = Voice.objects.create(tenant=world_a.tenant, name="Joe")
            client = APIClient()
            client.force_login(world_a.owner)
            created = client.post(
                "/api/v1/roles/",
                {"name": "R", "voice": voice.pk, "llm_engine": "openai", "llm_base_url": first.base_url,
                 "llm_api_key": "sk-stored"},
                format="json",
            )  # fmt: skip
            before = Role.objects.select_related("prompt").get(pk=created.json()["id"])
            moved = client.patch(f"/api/v1/roles/{before.pk}/", {"llm_base_url": second.base_url}, format="json")
            return before, Role.objects.select_related("prompt").get(pk=before.pk), moved.json()

        before, after, moved = await create_and_move()
        await _ask(before)
        await _ask(after)
    assert first.requests[0]["headers"]["Authorization"] == "Bearer sk-stored"
    assert "Authorization" not in second.requests[0]["headers"]
    assert moved["has_llm_api_key"] is False


def test_a_new_base_url_with_a_new_key_keeps_the_new_key_and_the_admin_clears_too(world_a, settings):
    settings.LIVEHUMAN = {**settings.LIVEHUMAN, "OUTBOUND_ALLOW": ["127.0.0.1"]}
    voice = Voice.objects.create(tenant=world_a.tenant, name="Joe")
    role = Role.objects.create(
        tenant=world_a.tenant, name="R", voice=voice, llm_engine="openai",
        llm_base_url="http://127.0.0.1:1/v1", llm_api_key="sk-old",
    )  # fmt: skip
    api = APIClient()
    api.force_login(world_a.owner)
    response = api.patch(
        f"/api/v1/roles/{role.pk}/", {"llm_base_url": "http://127.0.0.1:2/v1", "llm_api_key": "sk-new"}, format="json"
    )
    assert response.status_code == 200
    role.refresh_from_db()
    assert role.llm_api_key == "sk-new"
    admin = Client()
    admin.force_login(world_a.owner)
    form = {
        "name": "R", "voice": voice.pk, "asr_engine": "pocketsphinx", "llm_engine": "openai",
        "llm_base_url": "http://127.0.0.1:3/v1", "llm_api_key": "", "temperature": 0.7, "language": "en",
        "fps": 25, "active": "on",
    }  # fmt: skip
    changed = admin.post(f"/admin/avatars_app/role/{role.pk}/change/", form)
    assert changed.status_code == 302, changed.content.decode()[:2000]
    role.refresh_from_db()
    assert role.llm_base_url == "http://127.0.0.1:3/v1" and not role.llm_api_key
