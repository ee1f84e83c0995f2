"""The command transport: commands and state queries from anywhere (REST, another process) to the process that
owns a live session, over the channel layer, request and reply.

A session's media lives in the daphne process whose consumer accepted its
WebSocket; that consumer listens on the group ``session.<uuid>``. ``run`` sends
a command there with a fresh reply channel and waits a short while for the
owner's answer: its result, or its ``CommandError`` (``busy``, ``role_not_found``,
…). Nobody answering in time means nobody owns the session: ``not_live``. This
module only carries messages; what a command means for the rows is
``services``' job, and the owner runs it (``owner.SessionOwner.run``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.translation import gettext as _

from livehuman_site.conf import livehuman_settings

from .commands import Code, Command, CommandError, SwitchRole
from .models import ChatSession

logger = logging.getLogger(__name__)

COMMAND = "session.command"
STATE = "session.state"
REPLY = "session.reply"
LEAVE_TIMEOUT_S = 2.0


def session_group(session_id: Any) -> str:
    return f"session.{session_id}"


async def leave(channel: str, groups: Iterable[str]) -> None:
    """Take ``channel`` out of ``groups``. A channel layer that fails or hangs (Redis restarted, unreachable) is
    logged, not raised: whoever leaves is ending a session and must get to the end of it."""
    layer = get_channel_layer()
    for group in groups:
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT_S):
                await layer.group_discard(group, channel)
        except Exception:
            logger.warning("could not leave the channel-layer group %s", group, exc_info=True)


def run(session: ChatSession, command: Command) -> dict[str, Any]:
    """Run ``command`` on the process that owns ``session`` and return its result.

    Raises ``CommandError``: ``session_ended``; ``not_live`` at once when the
    session is not connected, or when its owner does not answer within the
    timeout (its worker is gone); else the owner's own refusal.
    """
    if session.state == ChatSession.State.ENDED:
        raise CommandError(Code.SESSION_ENDED, _("This session has ended; start a new one."))
    if session.state != ChatSession.State.CONNECTED:
        raise CommandError(
            Code.NOT_LIVE, _("The session is not connected; open it on the chat page or over its WebSocket first.")
        )
    # A role not loaded yet loads while the caller waits; everything else is quick.
    slow = isinstance(command, SwitchRole)
    timeout = livehuman_settings.ROLE_SWITCH_TIMEOUT_S if slow else livehuman_settings.SESSION_REPLY_TIMEOUT_S
    # sent_at: the owner reports how long the channel layer took to bring it (``livehuman_command_hop_seconds``)
    reply = _ask(session, {"type": COMMAND, "command": command.to_message(), "sent_at": time.time()}, timeout)
    if reply is None:
        raise CommandError(Code.NOT_LIVE, _("The server that runs this session did not answer; try again."))
    if not reply["ok"]:
        raise CommandError(reply["code"], reply["message"], reply.get("field"))
    return reply["result"]


def post(session: ChatSession, command: Command) -> None:
    """Send ``command`` to the owner, if there is one, without waiting (REST ``end``: the row is already ended)."""
    event = {"type": COMMAND, "command": command.to_message()}
    async_to_sync(get_channel_layer().group_send)(session_group(session.pk), event)


def state(session: ChatSession) -> dict[str, Any]:
    """The owner's live ``{state, role, fps, speaking_text}``, else the stored lifecycle state."""
    if session.state == ChatSession.State.CONNECTED:
        reply = _ask(session, {"type": STATE}, livehuman_settings.SESSION_REPLY_TIMEOUT_S)
        if reply is not None:
            return reply["result"]
    return {"state": session.state, "role": session.role_id, "fps": session.role.fps, "speaking_text": ""}


def _ask(session: ChatSession, event: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    return async_to_sync(_request)(session_group(session.pk), event, timeout)


async def _request(group: str, event: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send ``event`` to the session's owner and wait for its reply; None when nobody answers in time."""
    layer = get_channel_layer()
    reply_channel = await layer.new_channel()
    await layer.group_send(group, {**event, "reply_channel": reply_channel})
    try:
        return await asyncio.wait_for(layer.receive(reply_channel), timeout)
    except TimeoutError:
        return None
