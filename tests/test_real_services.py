"""The real services: PostgreSQL, a Celery worker process on Redis, channels-redis, and ``check_services``.

Redis tests use ``REDIS_TEST_URL`` (database 15 unless overridden) and a fresh
queue or group name per test, so they never meet another test's messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from django.db import connection

from tests.fixtures.processes import REDIS_TEST_URL, REPO, celery_worker_command, running

WORKER_START_TIMEOUT_S = 60


# ----------------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_postgres_run_really_uses_postgresql():
    """`pytest -m postgres` with DATABASE_URL=postgres://… must not silently fall back to SQLite."""
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("this run uses the embedded SQLite database (DATABASE_URL is not PostgreSQL)")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")


# ------------------------------------------------------------------------------ Celery on Redis


def _isolated_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A child's environment on embedded defaults in ``data_dir``, plus ``extra`` (e.g. REDIS_URL)."""
    dropped = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(
        DJANGO_SETTINGS_MODULE="livehuman_site.settings",
        LIVEHUMAN_DATA_DIR=str(data_dir),
        MEDIA_ROOT=str(data_dir / "media"),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _wait_until_ready(log: Path, process: subprocess.Popen, timeout: float = WORKER_START_TIMEOUT_S) -> None:
    """A Celery worker logs "ready." once it consumes; before that a message could race its table creation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if log.exists() and " ready." in log.read_text():
            return
        time.sleep(0.1)
    raise TimeoutError(f"the worker was not ready within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.mark.redis
@pytest.mark.slow
def test_a_real_worker_on_redis_runs_the_ping_task(tmp_path):
    queue = f"test-ping-{uuid.uuid4().hex[:8]}"
    env = _isolated_env(tmp_path, REDIS_URL=REDIS_TEST_URL)
    client = Celery("ping-client", broker=REDIS_TEST_URL, backend=REDIS_TEST_URL)
    log = tmp_path / "worker.log"
    with running(celery_worker_command("-Q", queue, "-n", f"{queue}@%h"), env, log) as worker:
        _wait_until_ready(log, worker)
        nonce = uuid.uuid4().hex
        started = time.perf_counter()
        result = client.send_task("livehuman_site.ping", args=[nonce], queue=queue)
        reply = result.get(timeout=20)
        elapsed_ms = (time.perf_counter() - started) * 1000
        result.forget()
    assert reply["nonce"] == nonce
    assert reply["pid"] == worker.pid  # --pool=solo: the worker process itself ran it
    assert "livehuman_site.ping" in log.read_text()
    print(f"\nping through Redis and a real worker: {elapsed_ms:.0f} ms")  # result.get's 20 s catches a hang


# ------------------------------------------------------------------------------ channels-redis


async def _group_round_trip(sender, receiver, timeout: float) -> dict | None:
    """``sender`` adds a channel of ``receiver`` to a group and sends to the group; what does ``receiver`` get?"""
    import asyncio

    group = f"test.{uuid.uuid4().hex}"
    channel = await receiver.new_channel()
    await sender.group_add(group, channel)
    try:
        await sender.group_send(group, {"type": "session.say", "text": "你好, hello"})
        return await asyncio.wait_for(receiver.receive(channel), timeout)
    except TimeoutError:
        return None
    finally:
        await sender.group_discard(group, channel)


@pytest.mark.redis
async def test_channels_redis_group_send_reaches_another_layer_instance():
    """Two layer instances stand for two daphne workers: only a shared Redis carries the message."""
    sender, receiver = (RedisChannelLayer(hosts=[REDIS_TEST_URL], prefix="livehuman-test") for _ in range(2))
    try:
        message = await _group_round_trip(sender, receiver, timeout=5)
    finally:
        await sender.close_pools()
        await receiver.close_pools()
    assert message == {"type": "session.say", "text": "你好, hello"}
    # The in-process layer shares nothing between instances: the check above is not vacuous.
    assert await _group_round_trip(InMemoryChannelLayer(), InMemoryChannelLayer(), timeout=0.3) is None


# ------------------------------------------------------------------------------- check_services


def _check_services(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict]]:
    completed = subprocess.run(
        [sys.executable, "manage.py", "check_services", "--json", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    results = {item["name"]: item for item in json.loads(completed.stdout)}
    return completed.returncode, results


def _check_with_a_worker(tmp_path: Path, **extra: str) -> dict[str, dict]:
    queue = f"test-health-{uuid.uuid4().hex[:8]}"
    env = _isolated_env(tmp_path, **extra)
    log = tmp_path / "worker.log"
    with running(celery_worker_command("-Q", queue, "-n", f"{queue}@%h"), env, log) as worker:
        _wait_until_ready(log, worker)
        code, results = _check_services(env, "--queue", queue, "--timeout", "20")
    assert code == 0, results
    assert all(result["ok"] for result in results.values()), results
    assert str(worker.pid) in results["celery worker"]["detail"]
    return results


@pytest.mark.slow
def test_check_services_on_the_embedded_defaults(tmp_path):
    results = _check_with_a_worker(tmp_path)
    assert results["database"]["detail"].startswith("sqlite")
    assert results["channel layer"]["detail"].startswith("InMemoryChannelLayer")
    assert results["celery broker"]["detail"].startswith("sqla+sqlite:")


@pytest.mark.redis
@pytest.mark.slow
def test_check_services_on_redis(tmp_path):
    results = _check_with_a_worker(tmp_path, REDIS_URL=REDIS_TEST_URL)
    assert results["channel layer"]["detail"].startswith("RedisChannelLayer")
    assert results["celery broker"]["detail"].startswith("redis://127.0.0.1:6379")


@pytest.mark.slow
def test_check_services_fails_without_a_worker(tmp_path):
    code, results = _check_services(_isolated_env(tmp_path), "--queue", "nobody-listens", "--timeout", "1")
    assert code == 1
    assert results["database"]["ok"] and results["celery broker"]["ok"]
    assert not results["celery worker"]["ok"] and "no worker answered" in results["celery worker"]["detail"]


@pytest.mark.slow
def test_check_services_reports_an_unreachable_redis(tmp_path):
    code, results = _check_services(_isolated_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0"), "--timeout", "2")
    assert code == 1
    assert results["database"]["ok"]
    assert not results["channel layer"]["ok"] and not results["celery broker"]["ok"]
    assert results["celery worker"]["detail"].startswith("skipped")
