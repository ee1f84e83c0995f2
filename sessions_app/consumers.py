"""SessionConsumer: the WebSocket of one chat session (DESIGN.md §7).

It translates and nothing else: JSON messages from the page into signaling
calls and commands on the session's ``SessionOwner``, the channel layer's
``session.command`` / ``session.state`` (REST, any process) into the same
commands, and the owner's events back into JSON messages. Who may connect is
decided by ``SessionOwner.open`` from what the auth middlewares put in the scope.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import translation
from django.utils.translation import gettext as _

from realtime.errors import SessionError
from realtime.metrics import COMMAND_HOP

from .client_errors import language_from_scope
from .commands import Code, CommandError, parse_command
from .control import REPLY, leave, session_group
from .live_config import tenant_roles_group
from .models import ChatSession
from .owner import GOING_AWAY, SERVER_ERROR, Refused, SessionOwner

logger = logging.getLogger(__name__)

NORMAL_CLOSE_CODES = {1000, 1001}  # the page closed the socket (left or pressed Stop); anything else is a drop


class SessionConsumer(AsyncJsonWebsocketConsumer):
    """One browser tab or integration connected to one chat session, on the process that owns its media."""

    async def connect(self) -> None:
        self.owner = SessionOwner(str(self.scope["url_route"]["kwargs"]["session_id"]), socket=self)
        self.group = session_group(self.owner.session_id)
        self._socket_open = True
        await self.accept()
        try:
            await self.owner.open(self.scope, worker=self.channel_name)
        except Refused as refusal:
            await self.owner.refuse(refusal)
            return
        except Exception:
            # Refuse rather than crash: a crashed connect would keep its place under the worker cap.
            logger.exception("session %s could not start", self.owner.session_id)
            await self.owner.refuse(Refused(Code.INTERNAL_ERROR, _("The session could not start."), SERVER_ERROR))
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.roles_group = tenant_roles_group(self.owner.chat_session.tenant_id)
        await self.channel_layer.group_add(self.roles_group, self.channel_name)
        await self.owner.announce()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve the socket until it closes; however the consumer's life ends, its session ends with it.

        The usual ends run through ``disconnect`` or the owner. What is left ends here: the server cancelling
        the consumer (daphne stopping: ``shutdown``), and an exception no handler caught — the channel layer
        failing under the consumer (Redis restarted or unreachable), a crash in ``disconnect`` — as ``error``.
        Either way the page is told, the peer connection closed, the row ended and the worker's place freed.

        Every sentence the socket is sent — refusals at connect included — is in the client's language (its
        language cookie, then Accept-Language): the whole life runs under that translation.
        """
        with translation.override(language_from_scope(scope)):
            try:
                await super().__call__(scope, receive, send)
            except asyncio.CancelledError:
                if getattr(self, "owner", None) is not None:
                    await self.owner.ended(ChatSession.EndReason.SHUTDOWN, close_code=GOING_AWAY)
                raise
            except Exception:
                logger.exception("session %s: the consumer failed", scope["url_route"]["kwargs"].get("session_id"))
                if getattr(self, "owner", None) is not None:
                    await self.owner.failed()

    async def disconnect(self, code: int) -> None:
        self._socket_open = False
        reason = ChatSession.EndReason.CLIENT if code in NORMAL_CLOSE_CODES else ChatSession.EndReason.DISCONNECTED
        await self.owner.teardown(reason)
        await leave(self.channel_name, self._groups())

    def _groups(self) -> list[str]:
        return [self.group, *([self.roles_group] if getattr(self, "roles_group", None) else [])]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            content = json.loads(text_data) if text_data is not None else None
        except ValueError:
            await self.owner.notify_error("bad_json", _("Messages must be JSON text."))
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.owner.notify_error(Code.BAD_MESSAGE, _('Each message is a JSON object with a "type".'))
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content["type"]
        try:
            if kind == "ping":
                await self.send_event({"type": "pong"})
                return
            if self.owner.live is None:
                return  # refused or closing: nothing to act on
            if kind == "offer":
                await self.owner.offer(content.get("sdp"))
            elif kind == "candidate":
                await self.owner.candidate(
                    content.get("candidate"), content.get("sdpMid"), content.get("sdpMLineIndex")
                )
            else:
                await self.owner.run(parse_command(kind, content))
        except (CommandError, SessionError) as exc:
            await self.owner.notify_error(exc.code, str(exc))
        except Exception:
            # A crash here would drop the socket without ``disconnect`` and leak the peer connection and tasks.
            logger.exception("session %s: %s failed", self.owner.session_id, kind)
            await self.owner.notify_error(Code.INTERNAL_ERROR, _("The server could not handle that message."))

    # --- the channel layer (sessions_app.control) -------------------------------------------------------------

    async def session_command(self, event: dict[str, Any]) -> None:
        if "sent_at" in event:
            COMMAND_HOP.labels(event["command"].get("type", "")).observe(max(0.0, time.time() - event["sent_at"]))
        reply = await self.owner.answer(event["command"])
        if event.get("reply_channel"):
            await self.channel_layer.send(event["reply_channel"], {"type": REPLY, **reply})

    async def role_changed(self, event: dict[str, Any]) -> None:
        await self.owner.role_changed(event["roles"])

    async def session_state(self, event: dict[str, Any]) -> None:
        snapshot = self.owner.snapshot()
        if snapshot is not None:
            await self.channel_layer.send(event["reply_channel"], {"type": REPLY, "ok": True, "result": snapshot})

    # --- the owner's Socket ----------------------------------------------------------------------------------

    async def send_event(self, content: dict[str, Any]) -> None:
        if self._socket_open:
            await self.send_json(content)

    async def close_socket(self, code: int = 1000) -> None:
        await leave(self.channel_name, self._groups())
        if self._socket_open:
            self._socket_open = False
            await self.close(code=code)
