"""Metrics and logs an operator reads: ``/metrics`` parsed with prometheus_client's text-format parser, and the
JSON log lines of a real daphne.

Two real daphne processes share a Redis channel layer. A session lives on A: an aiortc client calls it over real
WebRTC and speaks a question into its microphone (Piper speech), REST ``say`` and ``interrupt`` arrive through B.
A's ``/metrics`` then shows that session by state and tenant, the fps it delivered, lip-sync batch sizes, every
stage's latency, the interrupt (with its channel-layer hop and its time to silence) and an error by its code; B's
shows none of them (each process reports its own) but counts the REST requests and database queries it served.
A's log lines about the session are JSON objects naming the session and its tenant.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import httpx
import pytest
import redis

from testkit.voice import TalkingPeer
from tests.fixtures.processes import REDIS_TEST_URL, child_env, serving_daphne
from tests.fixtures.prometheus import Samples, parse, total
from tests.test_scale_out import Socket

TOKEN = "scrape-token-for-tests"
QUESTION = "What is the weather like in Paris today?"


async def scrape(base_url: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.mark.django_db
def test_metrics_need_the_token_and_are_off_without_one(client, settings):
    assert client.get("/metrics").status_code == 404  # no METRICS_TOKEN configured: no endpoint
    settings.LIVEHUMAN = {"METRICS_TOKEN": TOKEN}
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 401
    samples = parse(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())
    assert total(samples, "django_http_requests_total_by_method_total", method="GET") >= 3


@pytest.fixture
def two_daphnes_with_metrics(transactional_db, tmp_path) -> Iterator[tuple[tuple[str, Path], tuple[str, Path]]]:
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    env = child_env(REDIS_URL=REDIS_TEST_URL, LIVEHUMAN_METRICS_TOKEN=TOKEN, LOG_FORMAT="json")
    with ExitStack() as stack:
        servers = tuple(
            (stack.enter_context(serving_daphne(tmp_path / f"daphne-{name}.log", env)), tmp_path / f"daphne-{name}.log")
            for name in "ab"
        )
        yield servers


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
async def test_each_daphne_reports_its_own_sessions_stages_and_requests(
    two_daphnes_with_metrics, chat_session, world_a, speech
):
    (a, a_log), (b, _) = two_daphnes_with_metrics
    session_id = str(chat_session.pk)
    client = TalkingPeer()
    headers = {"Authorization": f"Api-Key {world_a.raw_key}"}
    async with aiohttp.ClientSession() as http, httpx.AsyncClient(base_url=b, headers=headers) as rest:
        ws_url = a.replace("http", "ws") + f"/ws/sessions/{session_id}/?api_key={world_a.raw_key}"
        socket = Socket(await http.ws_connect(ws_url))
        try:
            await socket.wait_for("state", timeout=60)
            await socket.ws.send_json({"type": "offer", "sdp": await client.offer()})
            await client.accept((await socket.wait_for("answer"))["sdp"])
            async with asyncio.timeout(20):
                while len(client.video) < 60:  # more than two seconds of video on the wire
                    await asyncio.sleep(0.05)

            say = await rest.post(
                f"/api/v1/sessions/{session_id}/say/", json={"text": "A long sentence to cut short. " * 6}
            )
            assert say.status_code == 202, say.text
            await socket.wait_for("state", state="speaking")
            assert (await rest.post(f"/api/v1/sessions/{session_id}/interrupt/")).status_code == 202
            await socket.wait_for("timings", interrupted=True)

            await client.say(speech(QUESTION, lead_s=0.4, tail_s=0.8))  # a voice turn: VAD, ASR, echo LLM, TTS
            await socket.wait_for("timings", timeout=40, interrupted=False)
            await socket.ws.send_json({"type": "no-such-message"})
            await socket.wait_for("error", code="bad_message")

            on_a, on_b = await scrape(a), await scrape(b)
            received = list(client.video)
        finally:
            await client.close()
            await socket.close()

    # The live session is counted where it runs, by state and tenant, and nowhere else.
    assert total(on_a, "livehuman_live_sessions", tenant="acme") == 1
    assert total(on_b, "livehuman_live_sessions") == 0
    # Frames delivered each second against the role's 25 fps target: never above it, and as many as the client
    # received per second of the frames' own timestamps (a loaded machine sends and receives fewer; a lost packet
    # only lowers what the client counts).
    seconds = total(on_a, "livehuman_session_fps_delivered_count", target="25")
    delivered = total(on_a, "livehuman_session_fps_delivered_sum", target="25") / max(seconds, 1)
    received_fps = (len(received) - 1) / ((received[-1].pts - received[0].pts) / 90_000)
    print(f"\nfps: the metric's mean {delivered:.1f}, the client's {received_fps:.1f} by pts")
    assert seconds >= 2 and 0.8 * received_fps < delivered < 30, (delivered, received_fps)
    assert total(on_a, "livehuman_session_fps_ratio_count") == seconds
    assert total(on_a, "livehuman_lipsync_batch_size_count") > 0
    for stage in ("vad_decision", "asr_tail", "llm_first_token", "tts_first_audio", "first_frame"):
        assert total(on_a, "livehuman_stage_latency_seconds_count", stage=stage) >= 1, stage
        assert total(on_b, "livehuman_stage_latency_seconds_count", stage=stage) == 0, stage
    assert total(on_a, "livehuman_interrupts_total") >= 1 and total(on_b, "livehuman_interrupts_total") == 0
    # The REST interrupt came through B: A timed the channel layer's hop and the interrupt until its audio fell silent.
    assert total(on_a, "livehuman_command_hop_seconds_count", command="interrupt") >= 1
    assert total(on_b, "livehuman_command_hop_seconds_count") == 0
    assert total(on_a, "livehuman_interrupt_silence_seconds_count") >= 1
    assert total(on_a, "livehuman_errors_total", code="bad_message") == 1
    # django-prometheus: B served the REST calls and queried the database for them.
    assert total(on_b, "django_http_requests_total_by_method_total", method="POST") >= 2
    assert total(on_b, "django_db_execute_total") > 0

    # A's log: JSON objects; those about the session carry its id and tenant.
    lines = [json.loads(line) for line in a_log.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("session_id") == session_id]
    assert all(line["tenant"] == "acme" for line in mine)
    events = {line["event"].split(":")[0] for line in mine}
    assert "session started" in events, events
    assert not [line for line in lines if line["logger"] == "sessions_app.consumers" and "session_id" not in line]
