"""Scale-out: two real daphne processes sharing channels-redis. The session's WebSocket (and so its media) is
on process A; REST say, interrupt, state and role sent to process B reach A's session through Redis."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import aiohttp
import httpx
import pytest
import redis
from channels.db import database_sync_to_async

from tests.fixtures.live import make_other_role
from tests.fixtures.processes import REDIS_TEST_URL, child_env, free_port, running, wait_for_port

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_daphnes(transactional_db, tmp_path) -> Iterator[tuple[str, str]]:
    """Two daphne processes on the test database and one Redis channel layer; yields their base URLs."""
    redis.Redis.from_url(REDIS_TEST_URL).flushdb()
    env = child_env(REDIS_URL=REDIS_TEST_URL)
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        processes = [
            stack.enter_context(
                running(
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "livehuman_site.asgi:application",
                    ],
                    env,
                    tmp_path / f"daphne-{name}.log",
                )
            )
            for name, port in zip("ab", ports, strict=True)
        ]
        for port, process in zip(ports, processes, strict=True):
            wait_for_port(port, 60, process)
        yield tuple(f"127.0.0.1:{port}" for port in ports)


class Socket:
    """A session WebSocket on a real server, its messages kept as they arrive."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))

    async def wait_for(self, kind: str, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                        return event
                await asyncio.sleep(0.02)

    async def closed_by_server(self, timeout: float = 20) -> int | None:
        """Wait until the server closes the socket; returns its close code."""
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@pytest.fixture
def other_role(world_a, _media_root):
    return make_other_role(world_a, _media_root)


async def test_rest_on_one_process_reaches_the_session_owned_by_the_other(
    two_daphnes, chat_session, other_role, world_a
):
    a, b = two_daphnes
    session_id = chat_session.pk
    async with aiohttp.ClientSession() as http:
        socket = Socket(await http.ws_connect(f"ws://{a}/ws/sessions/{session_id}/?api_key={world_a.raw_key}"))
        try:
            await socket.wait_for("state", timeout=60)  # process A owns the session now
            headers = {"Authorization": f"Api-Key {world_a.raw_key}"}
            async with httpx.AsyncClient(base_url=f"http://{b}/api/v1/sessions/{session_id}", headers=headers) as rest:
                text = "Hello from the other process. " + "This sentence keeps the avatar talking for a while. " * 4
                said = await rest.post("/say/", json={"text": text}, timeout=10)
                assert said.status_code == 202, said.text
                subtitle = await socket.wait_for("subtitle")
                assert subtitle["text"] == "Hello from the other process."
                await socket.wait_for("state", state="speaking")

                state = (await rest.get("/state/", timeout=10)).json()
                assert state["state"] == "speaking" and state["role"] == chat_session.role_id  # A's live state

                assert (await rest.post("/interrupt/", timeout=10)).status_code == 202
                timings = await socket.wait_for("timings", message_id=subtitle["message_id"])
                assert timings["interrupted"]
                assert (await rest.get("/state/", timeout=10)).json()["state"] == "idle"

                switched = await rest.post("/role/", json={"role": other_role.pk}, timeout=20)
                assert switched.status_code == 200, switched.text
                assert switched.json()["role"] == other_role.pk and switched.json()["fps"] == 30
                print(f"\nrole switch through Redis: {switched.json()['switch_ms']} ms on process A")
                assert (await socket.wait_for("role"))["role"] == other_role.pk
                state = (await rest.get("/state/", timeout=10)).json()
                assert state["role"] == other_role.pk and state["fps"] == 30
        finally:
            await socket.close()
    await database_sync_to_async(chat_session.refresh_from_db)()
    assert chat_session.role_id == other_role.pk
    assert chat_session.worker  # A's channel name: the session was owned there, not on B
