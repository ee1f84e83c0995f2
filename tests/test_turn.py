"""TURN: both peers of a call relayed by Debian's coturn on 127.0.0.1, with time-limited TURN REST credentials.

``POST sessions/`` hands the client its ICE servers (credentials made from the shared secret for this session)
and the transport policy; the server's aiortc peer gets its own from the same settings. With the policy "relay"
neither peer may use a direct path, so media that flows went through coturn. A client whose credentials coturn
refuses gets no relay, and so no call. The page does the same in chromium.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import pytest
from aiortc import RTCPeerConnection
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from realtime.net.ice import ice_servers, rtc_configuration, turn_rest_credentials
from sessions_app import session_factory
from testkit.defaults import ice_settings
from testkit.peers import ReceivingPeer, rms
from tests.fixtures.browser import chat_page_as_member
from tests.fixtures.live import EventLog, rest_client, session_communicator
from tests.fixtures.processes import child_env, serving_daphne

VOICED_RMS = 500  # int16 RMS of a received 20 ms packet that carries speech


def relay_settings(coturn, secret: str | None = None) -> dict:
    return {
        "TURN_URLS": [coturn.url],
        "TURN_SECRET": secret or coturn.secret,
        "TURN_TTL_S": 600,
        "ICE_TRANSPORT_POLICY": "relay",
    }


def candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_rest_credentials_are_an_expiring_username_signed_with_the_shared_secret():
    username, password = turn_rest_credentials("s3cret", "session-1", ttl_s=600, now=1_800_000_000)
    assert username == "1800000600:session-1"
    expected = hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == expected
    settings = ice_settings(
        servers=({"urls": ["stun:stun.example.org:3478"]},), turn_urls=("turn:t:3478",), turn_secret="x"
    )
    first, turn = ice_servers(settings, "a", now=0)
    assert first == {"urls": ["stun:stun.example.org:3478"]}
    assert turn["urls"] == ["turn:t:3478"] and turn["username"] == "86400:a"
    assert ice_servers(settings, "b", now=0)[1]["credential"] != turn["credential"]  # each peer its own


@pytest.mark.parametrize(
    "broken",
    [
        {"ICE_TRANSPORT_POLICY": "direct"},
        {"TURN_URLS": ["turn:t:3478"]},
        {"TURN_URLS": ["turn:t"], "TURN_SECRET": "s", "TURN_TTL_S": 0},
    ],
)
def test_unusable_ice_settings_are_refused_naming_them(broken):
    with override_settings(LIVEHUMAN=broken), pytest.raises(ImproperlyConfigured, match="ICE/TURN"):
        session_factory.ice_settings()


async def _relayed_call(role_pk: int, raw_key: str, *, say: str | None = None):
    """Create a session over REST, call it from an aiortc client with the ICE servers it was given."""
    async with rest_client(raw_key) as api:
        response = await api.post("/api/v1/sessions/", json={"role": role_pk})
    assert response.status_code == 201, response.text
    body = response.json()
    client = ReceivingPeer(peer=RTCPeerConnection(rtc_configuration(body["ice_servers"], body["ice_transport_policy"])))
    communicator = session_communicator(body["id"], api_key=raw_key)
    connected, _ = await communicator.connect()
    assert connected
    log = EventLog(communicator)
    offer = await client.offer()
    await communicator.send_json_to({"type": "offer", "sdp": offer})
    _, answer = await log.wait_for("answer", timeout=20)
    await client.accept(answer["sdp"])
    return body, client, communicator, log, offer, answer["sdp"]


async def _hang_up(client, communicator, log) -> None:
    await client.close()
    await log.stop()
    await communicator.disconnect(code=1001)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_a_call_relayed_only_through_coturn_carries_voice_and_video(talking_role, world_a, coturn, settings):
    settings.LIVEHUMAN = relay_settings(coturn)
    body, client, communicator, log, offer, answer = await _relayed_call(talking_role.pk, world_a.raw_key)
    try:
        page_turn = body["ice_servers"][0]
        assert page_turn["urls"] == [coturn.url] and page_turn["username"].endswith(f":{body['id']}")
        assert body["ice_transport_policy"] == "relay"
        # Only relay candidates on either side, and they are coturn's relay addresses.
        for sdp in (offer, answer):
            assert candidates(sdp) and all(" typ relay" in line for line in candidates(sdp)), sdp
            assert all(" 127.0.0.1 " in line for line in candidates(sdp))
        async with asyncio.timeout(20):
            while len(client.video) < 25 or len(client.audio) < 50:
                await asyncio.sleep(0.05)
        await communicator.send_json_to({"type": "say", "text": "Hello through the relay."})
        async with asyncio.timeout(20):
            while not any(rms(frame.data) > VOICED_RMS for frame in client.audio):
                await asyncio.sleep(0.05)
        assert client.peer.connectionState == "connected"
    finally:
        await _hang_up(client, communicator, log)
    # Each peer allocated its relay with its own REST credentials, and coturn bound channels between them.
    for user in (body["id"], f"server-{body['id']}"):
        coturn.wait_for_log(rf"user <\d+:{user}>: incoming packet ALLOCATE processed, success")
    coturn.wait_for_log(r"CHANNEL_BIND processed, success")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_credentials_from_another_secret_get_no_relay_and_no_call(talking_role, world_a, coturn, settings):
    settings.LIVEHUMAN = relay_settings(coturn, secret="not-the-servers-secret")
    body, client, communicator, log, offer, answer = await _relayed_call(talking_role.pk, world_a.raw_key)
    await _hang_up(client, communicator, log)
    # Relay-only peers whose allocations coturn refused offer no candidate at all: no path, so no call.
    assert not candidates(offer) and not candidates(answer), (offer, answer)
    coturn.wait_for_log(rf"user <\d+:{body['id']}>: incoming packet message processed, error 401")
    assert "ALLOCATE processed, success" not in coturn.log_text()


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_in_chromium_talks_through_coturn_only(
    world_a, talking_role, coturn, settings, tmp_path, transactional_db
):
    env = child_env(
        **{f"LIVEHUMAN_{k}": (v if isinstance(v, str) else json.dumps(v)) for k, v in relay_settings(coturn).items()}
    )
    with (
        serving_daphne(tmp_path / "daphne.log", env) as base_url,
        chat_page_as_member(base_url, world_a.member, settings) as chat,
    ):
        page = chat.page
        page.select_option("#role", str(talking_role.pk))
        page.click("#start-button")
        deadline = time.monotonic() + 30
        pair = page.evaluate(SELECTED_PAIR)
        while pair.get("frames", 0) < 25 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
            pair = page.evaluate(SELECTED_PAIR)
        assert pair.get("frames", 0) >= 25, f"no video decoded through the relay: {pair}"
        assert pair["local"] == "relay" and pair["remote"] == "relay", pair
        coturn.wait_for_log(r"user <\d+:server-[0-9a-f-]+>: incoming packet ALLOCATE processed, success")
        assert not chat.errors, chat.errors


SELECTED_PAIR = """async () => {
  if (!window.liveHuman.pc) return {};
  const stats = await window.liveHuman.pc.getStats();
  let pair = null, frames = 0;
  stats.forEach((r) => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded || 0;
  });
  if (!pair) return {frames};
  return {frames, local: stats.get(pair.localCandidateId).candidateType,
          remote: stats.get(pair.remoteCandidateId).candidateType};
}"""
