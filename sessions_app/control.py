"""Control of a live session from anywhere (REST, another process): through the channel layer to its owner.

A session's media lives in the daphne process whose consumer accepted its
WebSocket; that consumer listens on the group ``session.<uuid>``. Say and
interrupt are fire-and-forget group messages; ``state`` and ``switch_role`` ask
over a fresh reply channel. ``state`` falls back to the stored state when no
owner answers in time. This module only carries messages: what a command means
for the rows is ``services``' job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.conf import livehuman_settings

from .models import ChatSession

SAY = "session.say"
INTERRUPT = "session.interrupt"
STATE = "session.state"
STATE_REPLY = "session.state.reply"
SWITCH_ROLE = "session.switch_role"
SWITCH_ROLE_REPLY = "session.switch_role.reply"
END = "session.end"


def session_group(session_id: Any) -> str:
    return f"session.{session_id}"


class SessionNotLive(Exception):
    """No process owns the session's media: it is not connected yet, or it has ended."""

    code = "not_connected"


class SwitchRefused(Exception):
    """The owner could not switch the role (``code`` and message come from it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def say(session: ChatSession, text: str, interrupt: bool = False) -> None:
    _send(session, {"type": SAY, "text": text, "interrupt": interrupt})


def interrupt(session: ChatSession) -> None:
    _send(session, {"type": INTERRUPT})


def state(session: ChatSession) -> dict[str, Any]:
    """The owner's live ``{state, role, fps, speaking_text}``, else the stored lifecycle state."""
    if session.state == ChatSession.State.CONNECTED:
        timeout = livehuman_settings.SESSION_STATE_TIMEOUT_S
        reply = async_to_sync(_ask)(session_group(session.pk), {"type": STATE}, timeout)
        if reply is not None:
            return {key: reply[key] for key in ("state", "role", "fps", "speaking_text")}
    return {"state": session.state, "role": session.role_id, "fps": session.role.fps, "speaking_text": ""}


def close(session: ChatSession) -> None:
    """Tell the owning process, if there is one, to close the session's connection (REST ``end``)."""
    async_to_sync(get_channel_layer().group_send)(session_group(session.pk), {"type": END})


def _send(session: ChatSession, event: dict[str, Any]) -> None:
    if session.state != ChatSession.State.CONNECTED:
        raise SessionNotLive(_("The session is not connected; open it on the chat page or over its WebSocket first."))
    async_to_sync(get_channel_layer().group_send)(session_group(session.pk), event)


def switch_role(session: ChatSession, role: Role) -> dict[str, Any]:
    """Ask the owner of the connected ``session`` to play ``role`` (one of its tenant's, checked by the caller);
    returns its ``{role, fps, switch_ms}``. Raises ``SessionNotLive`` (no answer) and ``SwitchRefused``."""
    event = {"type": SWITCH_ROLE, "role": role.pk}
    reply = async_to_sync(_ask)(session_group(session.pk), event, livehuman_settings.ROLE_SWITCH_TIMEOUT_S)
    if reply is None:
        raise SessionNotLive(_("The server that runs this session did not answer; try again."))
    if not reply["ok"]:
        raise SwitchRefused(reply["code"], reply["message"])
    session.refresh_from_db(fields=["role"])
    return {key: reply[key] for key in ("role", "fps", "switch_ms")}


async def _ask(group: str, event: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send ``event`` to the session's owner and wait for its reply; None when nobody answers in time."""
    layer = get_channel_layer()
    reply_channel = await layer.new_channel()
    await layer.group_send(group, {**event, "reply_channel": reply_channel})
    try:
        return await asyncio.wait_for(layer.receive(reply_channel), timeout)
    except TimeoutError:
        return None
