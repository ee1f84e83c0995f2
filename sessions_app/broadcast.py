"""Broadcast sessions: a role streaming to an RTMP URL with nobody watching in a browser (live commerce).

``POST sessions/ {"role", "rtmp_url"}`` and the admin's "Start a broadcast" page (both through
``open_broadcast``) start one in the daphne process that took the request: a
``SessionOwner`` with no WebSocket, which joins the session's channel-layer group itself, so REST ``say``,
``interrupt``, ``state``, ``role``, ``rtmp`` and ``end`` reach it from any process exactly as they reach a
browser's session. It runs until ended; what a browser would have been told goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import Context
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from livehuman_site.outbound import outbound_policy

from . import services
from .control import COMMAND, REPLY, STATE, leave, session_group
from .live_config import ROLE_CHANGED, tenant_roles_group
from .models import ChatSession
from .owner import Refused, SessionOwner

if TYPE_CHECKING:
    from avatars_app.models import Role
    from livehuman_site.tenancy.scoping import Scope

logger = logging.getLogger(__name__)

_running: set[asyncio.Task] = set()  # the listeners: kept referenced until they end


class _Unwatched:
    """The owner's ``Socket`` for a session nobody watches: errors are logged, the rest is dropped."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def send_event(self, content: dict[str, Any]) -> None:
        if content.get("type") == "error":
            logger.warning("broadcast: %s: %s", content.get("code"), content.get("message"))

    async def close_socket(self, code: int = 1000) -> None:
        self.closed.set()


def open_broadcast(scope: Scope, role: Role, user: Any, rtmp_url: str) -> ChatSession:
    """A new session of ``role`` (under the tenant's session limit), started here as a broadcast to ``rtmp_url``
    (already checked by ``commands.checked_rtmp_url``); its stream's status is on ``rtmp_status``. Called from a
    sync view under daphne: asgiref runs the broadcast in daphne's event loop, where it lives on after the request.

    Raises ``services.SessionLimitReached``, ``services.RoleUnavailable``, or the owner's ``Refused`` (the new
    session is ended then)."""
    session = services.open_session(scope, role, user)
    try:
        session.rtmp_status = async_to_sync(start_broadcast)(session, rtmp_url)
    except Refused:
        services.end_session(session)
        raise
    return session


async def start_broadcast(session: ChatSession, rtmp_url: str) -> dict[str, Any]:
    """Open ``session`` here, start its stream, and serve its commands until it ends; returns the stream's
    status. Raises the owner's ``Refused`` (worker full, engine unavailable) before anything runs.

    The broadcast runs in a task of its own with a fresh context: it outlives the request that started it, so
    it must not inherit that request's (asgiref's per-request executor for database calls ends with it)."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[dict[str, Any]] = loop.create_future()
    task = loop.create_task(_run(session, rtmp_url, started), name=f"broadcast.{session.pk}", context=Context())
    _running.add(task)
    task.add_done_callback(_running.discard)
    return await started


async def _run(session: ChatSession, rtmp_url: str, started: asyncio.Future[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    socket = _Unwatched()
    owner = SessionOwner(str(session.pk), socket=socket)
    try:
        channel = await layer.new_channel("broadcast.")
        await owner.start(session, worker=channel)
        status = await owner.live.start_rtmp(rtmp_url, outbound_policy())
        await layer.group_add(session_group(session.pk), channel)
        await layer.group_add(tenant_roles_group(session.tenant_id), channel)
    except BaseException as exc:
        await owner.teardown(reason=None)
        started.set_exception(exc)
        return
    started.set_result(status.as_dict())
    await _serve(owner, socket, channel)


async def _serve(owner: SessionOwner, socket: _Unwatched, channel: str) -> None:
    """The consumer's job for a session without one: answer commands and state queries from the group."""
    layer = get_channel_layer()
    closed = asyncio.ensure_future(socket.closed.wait())
    reason = ChatSession.EndReason.CLIENT
    try:
        while not socket.closed.is_set():
            receive = asyncio.ensure_future(layer.receive(channel))
            await asyncio.wait({receive, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                break
            event = receive.result()
            if event["type"] == COMMAND:
                reply = await owner.answer(event["command"])
            elif event["type"] == ROLE_CHANGED:
                await owner.role_changed(event["roles"])
                continue
            elif event["type"] == STATE:
                snapshot = owner.snapshot()
                reply = {"ok": True, "result": snapshot} if snapshot is not None else None
            else:
                continue
            if reply is not None and event.get("reply_channel"):
                await layer.send(event["reply_channel"], {"type": REPLY, **reply})
    except asyncio.CancelledError:
        reason = ChatSession.EndReason.SHUTDOWN
        raise
    except Exception:  # the channel layer failed under it (Redis restarted, unreachable)
        logger.exception("broadcast %s failed", owner.session_id)
        reason = ChatSession.EndReason.ERROR
    finally:
        closed.cancel()
        await owner.teardown(reason)
        await leave(channel, [session_group(owner.session_id), tenant_roles_group(owner.chat_session.tenant_id)])
