"""Session places never leak (issue 10, Medium 6): whatever ends a daphne process's hold on its sessions, their
rows end with a reason and the tenant can start its full quota again.

Each test runs real daphne processes on the test database and drives them as a client would, over HTTP and
WebSocket: a channel layer (its own throwaway redis-server) killed under live sessions; a daphne stopped with
SIGTERM; a daphne killed with SIGKILL, whose rows the next daphne's sweep ends as ``lost`` while the sessions it
runs itself keep heartbeating. The tenant and the worker may each run two sessions, so a single leaked place
shows as a refusal. (An unclaimed ``created`` session: ``tests/test_session_access.py``.)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta

import aiohttp
import httpx
import pytest
from channels.db import database_sync_to_async

from sessions_app.models import ChatSession
from sessions_app.owner import GOING_AWAY, SERVER_ERROR
from tests.fixtures.processes import child_env, daphne_process, free_port, running, wait_for_port
from tests.test_scale_out import Socket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUOTA = 2  # the tenant's limit and each daphne's worker cap
PLACES = {"LIVEHUMAN_MAX_SESSIONS_PER_WORKER": str(QUOTA)}
HEARTBEAT = {"LIVEHUMAN_SESSION_HEARTBEAT_S": "0.5", "LIVEHUMAN_SESSION_LOST_AFTER_S": "8"}
LOST_AFTER = timedelta(seconds=8)  # generous: a loaded machine may delay a beat by seconds


@pytest.fixture
def tenant(world_a, talking_role):
    world_a.tenant.max_concurrent_sessions = QUOTA
    world_a.tenant.save()
    return world_a


@contextmanager
def redis_server(port: int, log_path) -> Iterator:
    """A throwaway redis-server on ``port`` (no persistence): this test's channel layer, to kill at will."""
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with running(command, child_env(), log_path) as process:
        wait_for_port(port, 20, process)
        yield process


@asynccontextmanager
async def live_sessions(base_url: str, world, role, count: int = QUOTA) -> AsyncIterator[list[tuple[str, Socket]]]:
    """``count`` sessions created over REST on ``base_url`` and connected over its WebSocket, each live (its
    first ``state`` received); yields ``[(session id, socket)]``."""
    headers = {"Authorization": f"Api-Key {world.raw_key}"}
    ws_base = base_url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as http, httpx.AsyncClient(base_url=base_url, headers=headers) as rest:
        made = []
        for _ in range(count):
            created = await rest.post("/api/v1/sessions/", json={"role": role.pk}, timeout=20)
            assert created.status_code == 201, created.text
            session_id = created.json()["id"]
            made.append(
                (
                    session_id,
                    Socket(await http.ws_connect(f"{ws_base}/ws/sessions/{session_id}/?api_key={world.raw_key}")),
                )
            )
        try:
            for _, socket in made:
                await socket.wait_for("state", timeout=60)
            yield made
        finally:
            for _, socket in made:
                await socket.close()


async def rows(session_ids) -> list[ChatSession]:
    return await database_sync_to_async(lambda: list(ChatSession.objects.filter(pk__in=session_ids)))()


async def wait_for_rows(session_ids, condition, timeout: float, what: str) -> list[ChatSession]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await rows(session_ids)
        if condition(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s: {[(r.state, r.end_reason) for r in found]}")
        await asyncio.sleep(0.1)


def ended_as(reason: str):
    return lambda found: all((row.state, row.end_reason) == ("ended", reason) for row in found)


async def test_a_channel_layer_failure_ends_the_sessions_and_leaves_the_full_quota(tenant, talking_role, tmp_path):
    redis_port = free_port()
    env = child_env(REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", **PLACES)
    with (
        redis_server(redis_port, tmp_path / "redis-1.log") as redis,
        daphne_process(tmp_path / "daphne.log", env) as (
            _,
            base_url,
        ),
    ):
        async with live_sessions(base_url, tenant, talking_role) as sessions:
            redis.kill()  # SIGKILL: the channel layer goes away under the live consumers
            for _, socket in sessions:
                assert await socket.closed_by_server(timeout=30) == SERVER_ERROR
                assert (await socket.wait_for("closed"))["reason"] == "error"
                assert (await socket.wait_for("error"))["code"] == "internal_error"
            await wait_for_rows([i for i, _ in sessions], ended_as("error"), 10, "rows ended as error")

        with redis_server(redis_port, tmp_path / "redis-2.log"):  # Redis is back (restarted, empty)
            # The tenant's quota and the worker's places are all free again: as many new sessions go live.
            async with live_sessions(base_url, tenant, talking_role) as again:
                assert len(again) == QUOTA


async def test_a_daphne_stopped_with_sigterm_ends_its_sessions_as_shutdown(tenant, talking_role, tmp_path):
    with daphne_process(tmp_path / "daphne.log", child_env(**PLACES)) as (process, base_url):
        async with live_sessions(base_url, tenant, talking_role) as sessions:
            process.send_signal(signal.SIGTERM)
            for _, socket in sessions:
                assert (await socket.wait_for("closed", timeout=30))["reason"] == "shutdown"
                assert await socket.closed_by_server(timeout=30) == GOING_AWAY
            assert await asyncio.to_thread(process.wait, 30) == 0
            await wait_for_rows([i for i, _ in sessions], ended_as("shutdown"), 5, "rows ended as shutdown")

    with daphne_process(tmp_path / "daphne-next.log", child_env(**PLACES)) as (_, base_url):
        async with live_sessions(base_url, tenant, talking_role) as again:
            assert len(again) == QUOTA


async def test_a_killed_daphnes_sessions_are_swept_as_lost_while_live_ones_keep_their_heartbeat(
    tenant, talking_role, tmp_path
):
    env = child_env(**PLACES, **HEARTBEAT)
    with daphne_process(tmp_path / "daphne-killed.log", env) as (process, base_url):
        async with live_sessions(base_url, tenant, talking_role, count=1) as sessions:
            process.send_signal(signal.SIGKILL)  # no chance to clean up
            assert await asyncio.to_thread(process.wait, 30) == -signal.SIGKILL
            killed = [i for i, _ in sessions]
            assert [row.state for row in await rows(killed)] == ["connected"]  # left behind, holding a place

    with daphne_process(tmp_path / "daphne-next.log", env) as (_, base_url):
        # The next daphne sweeps them on its own, without a request; its own session meanwhile goes live in the
        # place that is left and is kept alive by its heartbeat, past the time that ends a silent owner's rows.
        await wait_for_rows(killed, ended_as("lost"), 30, "the killed daphne's rows ended as lost")
        async with live_sessions(base_url, tenant, talking_role) as again:
            assert len(again) == QUOTA
            live = [i for i, _ in again]
            kept = await wait_for_rows(
                live,
                lambda found: (
                    all(row.heartbeat_at - row.started_at > LOST_AFTER * 1.2 for row in found)
                    or any(row.state == "ended" for row in found)
                ),
                30,
                "heartbeats past the lost-after time",
            )
            assert {row.state for row in kept} == {"connected"}
