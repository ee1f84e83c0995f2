"""Control of a live session from anywhere (REST, another process): through the channel layer to its owner.

A session's media lives in the daphne process whose consumer accepted its
WebSocket; that consumer listens on the group ``session.<uuid>``. Say and
interrupt are fire-and-forget group messages; ``state`` asks over a fresh
reply channel and falls back to the stored state when no owner answers in time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.translation import gettext as _

from livehuman_site.conf import livehuman_settings

from .models import ChatSession

SAY = "session.say"
INTERRUPT = "session.interrupt"
STATE = "session.state"
STATE_REPLY = "session.state.reply"


def session_group(session_id: Any) -> str:
    return f"session.{session_id}"


class SessionNotLive(Exception):
    """No process owns the session's media: it is not connected yet, or it has ended."""

    code = "not_connected"


def say(session: ChatSession, text: str, interrupt: bool = False) -> None:
    _send(session, {"type": SAY, "text": text, "interrupt": interrupt})


def interrupt(session: ChatSession) -> None:
    _send(session, {"type": INTERRUPT})


def state(session: ChatSession) -> dict[str, Any]:
    """The owner's live ``{state, role, fps, speaking_text}``, else the stored lifecycle state."""
    if session.state == ChatSession.State.CONNECTED:
        reply = async_to_sync(_ask_state)(session_group(session.pk), livehuman_settings.SESSION_STATE_TIMEOUT_S)
        if reply is not None:
            return {key: reply[key] for key in ("state", "role", "fps", "speaking_text")}
    return {"state": session.state, "role": session.role_id, "fps": session.role.fps, "speaking_text": ""}


def _send(session: ChatSession, event: dict[str, Any]) -> None:
    if session.state != ChatSession.State.CONNECTED:
        raise SessionNotLive(_("The session is not connected; open it on the chat page or over its WebSocket first."))
    async_to_sync(get_channel_layer().group_send)(session_group(session.pk), event)


async def _ask_state(group: str, timeout: float) -> dict[str, Any] | None:
    layer = get_channel_layer()
    reply_channel = await layer.new_channel()
    await layer.group_send(group, {"type": STATE, "reply_channel": reply_channel})
    try:
        return await asyncio.wait_for(layer.receive(reply_channel), timeout)
    except TimeoutError:
        return None
