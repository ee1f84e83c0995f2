"""The page's shown size over the real consumer and a real aiortc peer: frames are sent at the size the page
shows them at (``video_size``), grow back when it grows, never beyond the avatar's own size; a bad size is
refused with ``bad_video_size`` and changes nothing; a client that never says gets the full size."""

from __future__ import annotations

import asyncio

import pytest

from realtime.frame_size import FrameSize, ShownSize
from tests.fixtures.live import EventLog, live_session, session_communicator
from tests.test_webrtc_session import start_call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("loopback_ice")]


async def decoded_size(client, size: tuple[int, int], timeout: float = 10) -> int:
    """Wait until the client decodes frames ``size`` (width, height) big; the index of the first of them."""
    async with asyncio.timeout(timeout):
        while (client.video[-1].data.shape[1], client.video[-1].data.shape[0]) != size:
            await asyncio.sleep(0.02)
    return len(client.video) - 1


@pytest.mark.slow
async def test_frames_follow_the_shown_size_down_and_back_up_to_the_avatar_s_own(chat_session, world_a):
    call = await start_call(chat_session.pk, world_a.raw_key)
    client, send = call.client, call.communicator.send_json_to
    assert {frame.data.shape[:2] for frame in client.video} == {(512, 512)}  # nothing said: full size

    await send({"type": "video_size", "width": 256, "height": 256})
    small = await decoded_size(client, (256, 256))
    await send({"type": "say", "text": "Small frames while I speak."})
    _, timings = await call.log.wait_for("timings", timeout=30)
    spoken = client.video[small:]
    assert {frame.data.shape[:2] for frame in spoken} == {(256, 256)}  # idle and speech frames alike
    assert len(spoken) > 25 and timings["first_frame_ms"] > 0

    await send({"type": "video_size", "width": 300.4, "height": 612})  # a tall phone box, CSS px × ratio
    await decoded_size(client, (320, 320))  # the next step of 32 px: never fewer pixels than shown
    await send({"type": "video_size", "width": 1170, "height": 1170})  # a 3× screen: more than the avatar has
    full = await decoded_size(client, (512, 512))
    async with asyncio.timeout(5):
        while len(client.video) < full + 25:
            await asyncio.sleep(0.02)
    assert {frame.data.shape[:2] for frame in client.video[full:]} == {(512, 512)}
    assert not call.log.of_type("error")
    await call.hang_up()


BAD_SIZES = [
    {"width": 0, "height": 300},
    {"width": 300, "height": -4},
    {"width": 100_000, "height": 300},
    {"width": "320", "height": 300},
    {"width": True, "height": 300},
    {"width": 320},
    {"width": None, "height": 300},
]


async def test_a_bad_size_is_refused_with_its_code_and_changes_nothing(chat_session, world_a):
    communicator = session_communicator(chat_session.pk, api_key=world_a.raw_key)
    connected, _ = await communicator.connect()
    assert connected
    log = EventLog(communicator)
    await log.wait_for("state")
    live = live_session(chat_session.pk)
    await communicator.send_json_to({"type": "video_size", "width": 256, "height": 256})
    for bad in BAD_SIZES:
        await communicator.send_json_to({"type": "video_size", **bad})
    await communicator.send_to(text_data='{"type": "video_size", "width": NaN, "height": 300}')
    await communicator.send_json_to({"type": "ping"})
    await log.wait_for("pong")
    errors = log.of_type("error")
    assert [error["code"] for error in errors] == ["bad_video_size"] * (len(BAD_SIZES) + 1)
    assert "video_size" in errors[0]["message"] and "8192" in errors[0]["message"]  # in the client's language
    assert live.shown_size == ShownSize(256, 256)
    assert live.video_track.size == FrameSize(shown=ShownSize(256, 256))
    assert not log.of_type("socket.close")
    await log.stop()
    await communicator.disconnect()
