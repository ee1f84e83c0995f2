"""Broadcast sessions and RTMP control over the API: two real daphne processes on one Redis channel layer and
Debian's nginx-rtmp on 127.0.0.1.

``POST sessions/ {"role", "rtmp_url"}`` on process A starts a session nobody watches, streaming to nginx; REST
``say`` and ``state`` sent to process B reach it; ``rtmp`` stop and start control the stream; ``end`` closes it.
What nginx recorded decodes, with the voice in it. An RTMP URL the outbound policy refuses never gets a session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
import redis
from django.test import Client

from sessions_app.models import ChatSession
from tests.fixtures.processes import REDIS_TEST_URL, child_env, serving_daphne
from tests.fixtures.rtmp_server import RtmpServer
from tests.fixtures.tenancy import key_client
from tests.test_rtmp import VOICED_RMS, decode, windows_rms


@pytest.fixture
def two_daphnes_allowing_local_rtmp(transactional_db, tmp_path) -> Iterator[tuple[str, str]]:
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    env = child_env(REDIS_URL=REDIS_TEST_URL, LIVEHUMAN_OUTBOUND_ALLOW="127.0.0.1")
    with ExitStack() as stack:
        yield tuple(stack.enter_context(serving_daphne(tmp_path / f"daphne-{name}.log", env)) for name in "ab")


async def wait_for_rtmp(rest: httpx.AsyncClient, session_id: str, state: str, timeout: float = 30) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            body = (await rest.get(f"/api/v1/sessions/{session_id}/state/")).json()
            if (body.get("rtmp") or {}).get("state") == state:
                return body
            await asyncio.sleep(0.2)


@pytest.mark.redis
@pytest.mark.slow
async def test_a_broadcast_started_on_one_process_is_driven_from_the_other(
    two_daphnes_allowing_local_rtmp, rtmp_server, talking_role, world_a
):
    a, b = two_daphnes_allowing_local_rtmp
    headers = {"Authorization": f"Api-Key {world_a.raw_key}"}
    async with (
        httpx.AsyncClient(base_url=a, headers=headers, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b, headers=headers, timeout=30) as on_b,
    ):
        created = await on_a.post("/api/v1/sessions/", json={"role": talking_role.pk, "rtmp_url": rtmp_server.url})
        assert created.status_code == 201, created.text
        body = created.json()
        session_id = body["id"]
        assert body["rtmp"]["state"] in {"connecting", "live"} and "secret" not in body["rtmp"]["url"]
        assert "rtmp_url" not in body  # write-only: the stream key is not echoed

        await wait_for_rtmp(on_b, session_id, "live")
        say = await on_b.post(f"/api/v1/sessions/{session_id}/say/", json={"text": "Hello, live stream viewers."})
        assert say.status_code == 202, say.text
        async with asyncio.timeout(30):  # spoken, then idle again
            while (await on_b.get(f"/api/v1/sessions/{session_id}/state/")).json()["state"] != "speaking":
                await asyncio.sleep(0.1)
            while (await on_b.get(f"/api/v1/sessions/{session_id}/state/")).json()["state"] != "idle":
                await asyncio.sleep(0.1)

        stopped = await on_b.post(f"/api/v1/sessions/{session_id}/rtmp/", json={"action": "stop"})
        assert stopped.status_code == 202, stopped.text
        assert (await on_b.get(f"/api/v1/sessions/{session_id}/state/")).json()["rtmp"] is None
        [first] = rtmp_server.wait_for_recording(1)
        restarted = await on_b.post(
            f"/api/v1/sessions/{session_id}/rtmp/", json={"action": "start", "url": rtmp_server.url}
        )
        assert restarted.status_code == 202 and restarted.json()["state"] in {"connecting", "live"}, restarted.text
        await wait_for_rtmp(on_b, session_id, "live")
        await asyncio.to_thread(rtmp_server.wait_for_pictures, 2, 10)  # the restarted stream carries pictures
        assert (await on_b.post(f"/api/v1/sessions/{session_id}/end/")).status_code == 200
    recordings = rtmp_server.wait_for_recording(2)

    video, audio, _, codecs = decode(first)
    assert codecs == {"video": "h264", "audio": "aac"} and len(video) > 25
    assert (windows_rms(audio) > VOICED_RMS).sum() > 25  # the REST say was heard in the stream
    assert len(decode(recordings[-1])[0]) > 10
    session = await asyncio.to_thread(ChatSession.objects.get, pk=session_id)
    assert session.state == ChatSession.State.ENDED


@pytest.mark.django_db
def test_an_rtmp_url_the_policy_refuses_gets_no_session(talking_role, world_a):
    api = key_client(world_a.raw_key)
    for url in [
        "rtmp://127.0.0.1:1935/live/key",  # internal, and nobody allow-listed it
        "http://example.com/live/key",  # not RTMP
        "rtmp://user:pw@example.com/live/key",  # credentials in the URL
    ]:
        response = api.post("/api/v1/sessions/", {"role": talking_role.pk, "rtmp_url": url}, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["error"]["fields"]["rtmp_url"], response.json()
    assert not ChatSession.objects.exists()


@pytest.mark.redis
@pytest.mark.slow
def test_the_admin_stops_and_starts_a_broadcasts_stream(
    two_daphnes_allowing_local_rtmp, rtmp_server, talking_role, world_a, settings
):
    """The admin's RTMP page runs the same command through the channel layer (Redis, as in production)."""
    a, _ = two_daphnes_allowing_local_rtmp
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_TEST_URL]}}
    }
    settings.LIVEHUMAN = {"OUTBOUND_ALLOW": ["127.0.0.1"]}
    headers = {"Authorization": f"Api-Key {world_a.raw_key}"}
    created = httpx.post(
        f"{a}/api/v1/sessions/",
        json={"role": talking_role.pk, "rtmp_url": rtmp_server.url},
        headers=headers,
        timeout=60,
    )
    assert created.status_code == 201, created.text
    page = f"/admin/sessions_app/chatsession/{created.json()['id']}/rtmp/"
    admin = Client()
    admin.force_login(world_a.owner)
    streams_live(admin, page, rtmp_server, streams=1)  # nginx has recorded pictures before it is stopped

    stopped = admin.post(page, {"stop": "1"}, follow=True)
    assert stopped.status_code == 200 and "stopped" in stopped.content.decode()
    refused = admin.post(page, {"start": "1", "url": "rtmp://10.1.2.3/live/key"}, follow=True).content.decode()
    assert "10.1.2.3" in refused  # the outbound policy's refusal, naming the host
    restarted_url = rtmp_server.url_for("second-key-secret")  # its own recording, however soon it starts
    started = admin.post(page, {"start": "1", "url": restarted_url}, follow=True).content.decode()
    assert "RTMP" in started and "secret" not in started
    streams_live(admin, page, rtmp_server, streams=2)
    httpx.post(f"{a}/api/v1/sessions/{created.json()['id']}/end/", headers=headers, timeout=30)
    assert len(rtmp_server.wait_for_recording(2, min_bytes=2_000)) == 2


def streams_live(admin: Client, page: str, rtmp_server: RtmpServer, streams: int, timeout: float = 30) -> None:
    """Wait until the admin's RTMP page says the stream is live and nginx has recorded pictures of ``streams``
    streams (a stream stopped at once may leave a recording too short to decode)."""
    deadline = time.monotonic() + timeout
    while "RTMP: <strong>live</strong>" not in admin.get(page).content.decode() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "RTMP: <strong>live</strong> rtmp://127.0.0.1" in admin.get(page).content.decode()
    rtmp_server.wait_for_recording(streams, min_bytes=2_000)


@pytest.fixture
def daphne_allowing_local_rtmp(transactional_db, tmp_path) -> Iterator[str]:
    with serving_daphne(tmp_path / "daphne.log", child_env(LIVEHUMAN_OUTBOUND_ALLOW="127.0.0.1")) as base_url:
        yield base_url


def admin_over_http(base_url: str, user) -> httpx.Client:
    """An HTTP client of the real daphne, logged in to the admin as ``user`` (a session in the shared database)."""
    login = Client()
    login.force_login(user)
    return httpx.Client(base_url=base_url, cookies={"sessionid": login.cookies["sessionid"].value}, timeout=60)


@pytest.mark.slow
def test_the_admin_starts_a_broadcast_of_a_role(daphne_allowing_local_rtmp, rtmp_server, talking_role, world_a):
    """Over HTTP on a real daphne: the session list links to "Start a broadcast"; a URL the outbound policy refuses
    is shown as the form's error and opens nothing; the nginx URL starts a session of the role that streams (its
    RTMP page says live, nginx records it) and speaks what REST ``say`` gives it."""
    with admin_over_http(daphne_allowing_local_rtmp, world_a.owner) as admin:
        listing = admin.get("/admin/sessions_app/chatsession/")
        page = "/admin/sessions_app/chatsession/broadcast/"
        assert listing.status_code == 200 and f'href="{page}"' in listing.text
        assert admin.get(page).status_code == 200
        form = {"csrfmiddlewaretoken": admin.cookies["csrftoken"], "role": str(talking_role.pk)}
        refused = admin.post(page, data={**form, "rtmp_url": "rtmp://10.1.2.3/live/key"})
        assert refused.status_code == 200 and "10.1.2.3" in refused.text and "errorlist" in refused.text
        assert not ChatSession.objects.exists()

        started = admin.post(page, data={**form, "rtmp_url": rtmp_server.url}, follow_redirects=True)
        session = ChatSession.objects.get()
        assert (session.role_id, session.user_id, session.state) == (talking_role.pk, world_a.owner.pk, "connected")
        rtmp_page = f"/admin/sessions_app/chatsession/{session.pk}/rtmp/"
        assert started.status_code == 200 and started.url.path == rtmp_page and "secret" not in started.text
        deadline = time.monotonic() + 30
        while "RTMP: <strong>live</strong>" not in admin.get(rtmp_page).text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "RTMP: <strong>live</strong> rtmp://127.0.0.1" in admin.get(rtmp_page).text

    with httpx.Client(
        base_url=daphne_allowing_local_rtmp, headers={"Authorization": f"Api-Key {world_a.raw_key}"}
    ) as rest:
        said = rest.post(f"/api/v1/sessions/{session.pk}/say/", json={"text": "Live from the admin."}, timeout=30)
        assert said.status_code == 202, said.text
        deadline = time.monotonic() + 30
        while rest.get(f"/api/v1/sessions/{session.pk}/state/").json()["state"] != "speaking":
            assert time.monotonic() < deadline, "the broadcast never spoke"
            time.sleep(0.1)
        while rest.get(f"/api/v1/sessions/{session.pk}/state/").json()["state"] != "idle":
            assert time.monotonic() < deadline, "the broadcast never finished speaking"
            time.sleep(0.1)
        assert rest.post(f"/api/v1/sessions/{session.pk}/end/", timeout=30).status_code == 200
    [recording] = rtmp_server.wait_for_recording(1, min_bytes=2_000)
    video, audio, _, codecs = decode(recording)
    assert codecs == {"video": "h264", "audio": "aac"} and len(video) > 10
    assert (windows_rms(audio) > VOICED_RMS).sum() > 10  # the sentence said over REST is in the stream
