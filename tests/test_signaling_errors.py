"""Signaling errors get precise codes and leave the session usable (issue 10, Low 8), over the real consumer."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from tests.fixtures.live import EventLog, live_session, session_communicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_ice")]

GARBAGE_OFFERS = ["garbage", "v=0\r\nm=video x y z\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP 111\r\n"]
BAD_CANDIDATES = ["candidate:garbage", "candidate:1 1 udp 1 127.0.0.1", "candidate:1 1 udp x 127.0.0.1 9 typ host"]


async def test_garbage_offers_and_malformed_candidates_leave_the_session_usable(chat_session, world_a):
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    connected, _ = await communicator.connect()
    assert connected
    log = EventLog(communicator)
    await log.wait_for("state", timeout=30)
    for sdp in GARBAGE_OFFERS:
        await communicator.send_json_to({"type": "offer", "sdp": sdp})
    await communicator.send_json_to({"type": "ping"})
    await log.wait_for("pong")
    assert [event["code"] for event in log.of_type("error")] == ["bad_offer"] * len(GARBAGE_OFFERS)
    assert live_session(chat_session.pk).peer.connection is None
    client = RTCPeerConnection()
    client.addTransceiver("audio", direction="recvonly")
    client.addTransceiver("video", direction="recvonly")
    await client.setLocalDescription(await client.createOffer())
    await communicator.send_json_to({"type": "offer", "sdp": client.localDescription.sdp})
    _, answer = await log.wait_for("answer", timeout=20)  # a valid offer after the garbage is answered
    assert answer["sdp"].startswith("v=0")
    for candidate in BAD_CANDIDATES:
        await communicator.send_json_to({"type": "candidate", "candidate": candidate, "sdpMid": "0"})
    expected = len(GARBAGE_OFFERS) + len(BAD_CANDIDATES)
    async with asyncio.timeout(10):
        while len(log.of_type("error")) < expected:
            await asyncio.sleep(0.05)
    codes = [event["code"] for event in log.of_type("error")]
    assert codes[len(GARBAGE_OFFERS) :] == ["bad_candidate"] * len(BAD_CANDIDATES)
    assert "internal_error" not in codes and not log.of_type("socket.close")
    await client.close()
    await log.stop()
    await communicator.disconnect()
