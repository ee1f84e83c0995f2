"""Health checks of the services the platform depends on: database, channel layer, Celery.

Each check does a real round trip (a query, a group message, a task run by a
worker) rather than only opening a connection, and never raises: failures come
back as a ``CheckResult`` an operator can read. ``manage.py check_services`` prints them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from django.db import connections


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    elapsed_ms: float


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    """Run ``check`` (which returns a detail line or raises) and time it."""
    start = time.perf_counter()
    try:
        detail, ok = check(), True
    except Exception as exc:  # any failure is the answer, not a crash of the command
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return CheckResult(name, ok, detail, (time.perf_counter() - start) * 1000)


def check_database(alias: str = "default") -> CheckResult:
    """Run ``SELECT 1`` on the database."""

    def query() -> str:
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            if cursor.fetchone()[0] != 1:
                raise RuntimeError("SELECT 1 returned something else")
        where = connection.settings_dict.get("HOST") or connection.settings_dict["NAME"]
        return f"{connection.vendor} at {where}"

    return _timed("database", query)


async def _group_round_trip(layer: BaseChannelLayer, timeout: float) -> None:
    nonce = uuid.uuid4().hex
    group = f"health.{nonce}"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    try:
        await layer.group_send(group, {"type": "health.ping", "nonce": nonce})
        message = await asyncio.wait_for(layer.receive(channel), timeout)
    finally:
        await layer.group_discard(group, channel)
        if hasattr(layer, "close_pools"):  # channels-redis: its connections belong to this event loop
            await layer.close_pools()
    if message.get("nonce") != nonce:
        raise RuntimeError(f"received someone else's message: {message!r}")


def check_channel_layer(layer: BaseChannelLayer | None = None, timeout: float = 5.0) -> CheckResult:
    """Send a message to a group and receive it on a member channel."""

    def round_trip() -> str:
        active = layer if layer is not None else get_channel_layer()
        if active is None:
            raise RuntimeError("CHANNEL_LAYERS has no default layer")
        async_to_sync(_group_round_trip)(active, timeout)
        return f"{type(active).__name__}: group_send received"

    return _timed("channel layer", round_trip)


def check_celery_broker(timeout: float = 5.0) -> CheckResult:
    """Connect to the Celery broker."""
    from kombu.utils.url import maybe_sanitize_url

    from livehuman_site.celery import app

    def connect() -> str:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return maybe_sanitize_url(app.conf.broker_url)  # a password, if any, shows as **

    return _timed("celery broker", connect)


def check_celery_worker(timeout: float = 10.0, queue: str | None = None) -> CheckResult:
    """Send the ``ping`` task and wait for a worker's answer through the result backend."""
    from celery.exceptions import TimeoutError as ResultTimeout

    from livehuman_site.tasks import ping

    def round_trip() -> str:
        nonce = uuid.uuid4().hex
        # expires: a ping nobody took in time must not run later, when a worker finally appears
        result = ping.apply_async(args=[nonce], queue=queue, expires=timeout)
        try:
            reply: dict[str, Any] = result.get(timeout=timeout, interval=0.05)  # db backend: polled
        except ResultTimeout as exc:
            where = f"queue {queue!r}" if queue else "the default queue"
            raise TimeoutError(f"no worker answered on {where} within {timeout:g} s") from exc
        finally:
            result.forget()
        if reply.get("nonce") != nonce:
            raise RuntimeError(f"the worker answered another ping: {reply!r}")
        return f"answered by {reply['hostname']} (pid {reply['pid']})"

    return _timed("celery worker", round_trip)


def check_all(timeout: float = 10.0, queue: str | None = None) -> list[CheckResult]:
    """Every check, in dependency order; the worker round trip is skipped when the broker is down."""
    results = [check_database(), check_channel_layer(timeout=timeout), check_celery_broker(timeout=timeout)]
    if results[-1].ok:
        results.append(check_celery_worker(timeout=timeout, queue=queue))
    else:
        results.append(CheckResult("celery worker", False, "skipped: the broker is unreachable", 0.0))
    return results
