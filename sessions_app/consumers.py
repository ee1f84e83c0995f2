"""SessionConsumer: the WebSocket of one chat session (DESIGN.md §7) — signaling, speech control, events.

Thin on purpose: it checks who is asking and whether there is room, turns
messages into calls on the ``LiveSession`` and the session's events into
messages, and keeps the database work (the session row, one assistant Message
per spoken text) in a few ``database_sync_to_async`` helpers.

Order on connect: authenticate (session login or API key) → find the session
through the caller's tenant scope → take a place under the per-worker cap →
only then load engines; the peer connection is made when the offer arrives.
The tenant's cap was enforced when the session was created over REST, and
is checked again here against the tenant's live sessions (any process).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Now
from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.authentication import authenticate_api_key
from livehuman_site.tenancy.scoping import scope_for_api_key, scope_for_user
from realtime.avatar.format import UnsupportedBundle
from realtime.config import SessionConfig
from realtime.conversation import TalkMode, TurnRows
from realtime.engines.base import EngineUnavailable
from realtime.engines.registry import UnknownEngine
from realtime.pipeline import PipelineFull
from realtime.session import LiveSession, MessageTimings, SessionError

from .client_errors import report
from .control import STATE_REPLY, SWITCH_ROLE_REPLY, session_group
from .live_sessions import AlreadyLive, WorkerFull, live_sessions
from .models import ChatSession, Message
from .preload import preload_once
from .services import (
    RoleNotFound,
    RoleUnavailable,
    change_role,
    switch_target,
    tenant_has_room,
    visible_sessions,
)
from .session_factory import SessionUnavailable, build_session_config, get_pool

logger = logging.getLogger(__name__)

NORMAL_CLOSE_CODES = {1000, 1001}  # the page closed the socket (left or pressed Stop); anything else is a drop


class Refused(Exception):
    """The connection is refused: sent as ``error`` then ``closed``, and the socket closes with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code


class SessionConsumer(AsyncJsonWebsocketConsumer):
    """One browser tab or integration connected to one chat session, on the process that owns its media."""

    async def connect(self) -> None:
        self.session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        self.chat_session: ChatSession | None = None
        self.live: LiveSession | None = None
        self._reserved = False
        self._torn_down = False
        self._socket_open = True
        await self.accept()
        try:
            await self._open()
        except Refused as refusal:
            await self._refuse(refusal)
        except Exception:
            # Refuse rather than crash: a crashed connect would keep its place under the worker cap.
            logger.exception("session %s could not start", self.session_id)
            await self._refuse(Refused("internal_error", _("The session could not start."), 1011))

    async def disconnect(self, code: int) -> None:
        self._socket_open = False
        reason = ChatSession.EndReason.CLIENT if code in NORMAL_CLOSE_CODES else ChatSession.EndReason.DISCONNECTED
        await self._teardown(reason)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        try:
            content = json.loads(text_data) if text_data is not None else None
        except ValueError:
            await self._error("bad_json", _("Messages must be JSON text."))
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("bad_message", _('Each message is a JSON object with a "type".'))
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content["type"]
        if kind == "ping":
            await self._send({"type": "pong"})
            return
        handler = {
            "offer": self._on_offer,
            "candidate": self._on_candidate,
            "say": self._on_say,
            "interrupt": self._on_interrupt,
            "mode": self._on_mode,
            "talk": self._on_talk,
            "switch_role": self._on_switch_role,
        }.get(kind)
        if handler is None:
            await self._error("bad_message", _("Unknown message type %(type)r.") % {"type": kind})
            return
        if self.live is None:
            return  # refused or closing: nothing to act on
        try:
            await handler(content)
        except SessionError as exc:
            await self._error(exc.code, str(exc))
        except Exception:
            # A crash here would drop the socket without ``disconnect`` and leak the peer connection and tasks.
            logger.exception("session %s: %s failed", self.session_id, kind)
            await self._error("internal_error", _("The server could not handle that message."))

    # --- client messages -------------------------------------------------------------------------------------

    async def _on_offer(self, content: dict[str, Any]) -> None:
        sdp = content.get("sdp")
        if not isinstance(sdp, str) or not sdp:
            raise SessionError("bad_message", _('"offer" needs an "sdp" string.'))
        answer = await self.live.accept_offer(sdp)
        await self._send({"type": "answer", "sdp": answer})

    async def _on_candidate(self, content: dict[str, Any]) -> None:
        index = content.get("sdpMLineIndex")
        await self.live.add_candidate(
            str(content.get("candidate") or ""), content.get("sdpMid"), index if isinstance(index, int) else None
        )

    async def _on_say(self, content: dict[str, Any]) -> None:
        await self._say(content.get("text"), bool(content.get("interrupt", False)))

    async def _on_interrupt(self, content: dict[str, Any]) -> None:
        await self.live.interrupt()

    async def _on_mode(self, content: dict[str, Any]) -> None:
        try:
            mode = TalkMode(content.get("talk"))
        except ValueError:
            raise SessionError("bad_message", _('"mode" needs "talk": "push" or "hands_free".')) from None
        self.live.set_talk_mode(mode)

    async def _on_talk(self, content: dict[str, Any]) -> None:
        """The push-to-talk button: ``{"on": true}`` while held, ``{"on": false}`` when let go."""
        self.live.set_talking(bool(content.get("on")))

    async def _on_switch_role(self, content: dict[str, Any]) -> None:
        await self._send({"type": "role", **await self._switch_role(content.get("role"))})

    # --- group messages (REST control through the channel layer, sessions_app.control) -------------------------

    async def session_say(self, event: dict[str, Any]) -> None:
        if self.live is not None:
            try:
                await self._say(event.get("text"), bool(event.get("interrupt", False)))
            except SessionError as exc:
                await self._error(exc.code, str(exc))

    async def session_interrupt(self, event: dict[str, Any]) -> None:
        if self.live is not None:
            await self.live.interrupt()

    async def session_state(self, event: dict[str, Any]) -> None:
        if self.live is not None:
            await self.channel_layer.send(event["reply_channel"], {"type": STATE_REPLY, **self.live.snapshot()})

    async def session_end(self, event: dict[str, Any]) -> None:
        """REST ``end``: the row is already ended; close the media and the socket here, where they live."""
        if self.live is not None:
            await self.ended(ChatSession.EndReason.CLIENT)

    async def session_switch_role(self, event: dict[str, Any]) -> None:
        if self.live is None:
            return
        try:
            switched = await self._switch_role(event.get("role"))
        except SessionError as exc:
            reply = {"ok": False, "code": exc.code, "message": str(exc)}
        except Exception:  # a crash here would drop the socket and leave the caller waiting for its timeout
            logger.exception("session %s: switch_role failed", self.session_id)
            reply = {"ok": False, "code": "internal_error", "message": _("The server could not switch the role.")}
        else:
            reply = {"ok": True, **switched}
            await self._send({"type": "role", **switched})  # the page shows the new role too
        await self.channel_layer.send(event["reply_channel"], {"type": SWITCH_ROLE_REPLY, **reply})

    # --- SessionEvents (from the LiveSession) -----------------------------------------------------------------

    async def state_changed(self, state: str) -> None:
        await self._send({"type": "state", "state": state, "fps": self.live.rate.fps})

    async def subtitle(self, text: str, message_id: int) -> None:
        await self._send({"type": "subtitle", "text": text, "message_id": message_id})

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None:
        await self._record_timings(message_id, timings)
        await self._send(
            {
                "type": "timings",
                "message_id": message_id,
                "asr_ms": timings.asr_ms,
                "llm_first_token_ms": timings.llm_first_token_ms,
                "tts_first_audio_ms": timings.tts_first_audio_ms,
                "first_frame_ms": timings.first_frame_ms,
                "total_ms": timings.total_ms,
                "interrupted": timings.interrupted,
            }
        )

    async def media_started(self) -> None:
        await self._greet()

    async def transcript(self, text: str, final: bool, message_id: int | None) -> None:
        await self._send({"type": "transcript", "text": text, "final": final, "message_id": message_id})

    @database_sync_to_async
    def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        session = self.chat_session
        rows = {"tenant_id": session.tenant_id, "session": session}
        with transaction.atomic():  # one round trip's worth of work: this wait is part of the answer's latency
            user = Message.objects.create(**rows, speaker=Message.Speaker.USER, text=text, asr_ms=asr_ms)
            answer = Message.objects.create(**rows, speaker=Message.Speaker.ASSISTANT, text="")
        return TurnRows(user.pk, answer.pk)

    async def error(self, code: str, message: str) -> None:
        await self._error(code, report(self.session_id, code, message))

    async def ended(self, reason: str) -> None:
        await self._send({"type": "closed", "reason": reason})
        await self._teardown(reason)
        await self._close_socket()

    # --- internals -------------------------------------------------------------------------------------------

    async def _open(self) -> None:
        self.chat_session = await self._authorize()
        try:
            live_sessions.reserve(self.session_id, livehuman_settings.MAX_SESSIONS_PER_WORKER)
        except AlreadyLive as exc:
            raise Refused(exc.code, _("This session is already connected."), 4409) from exc
        except WorkerFull as exc:
            raise Refused(exc.code, _("This server is at its session limit; try again shortly."), 4429) from exc
        self._reserved = True
        try:
            config = await database_sync_to_async(build_session_config)(self.chat_session)
            if livehuman_settings.PRELOAD_ROLES:
                preload_once(get_pool())
            self.live = await LiveSession.open(config, get_pool(), self)
        except (SessionUnavailable, EngineUnavailable, UnknownEngine, UnsupportedBundle) as exc:
            await self._end_row(ChatSession.EndReason.ERROR)
            raise Refused("engine_unavailable", report(self.session_id, "engine_unavailable", str(exc)), 4503) from exc
        live_sessions.attach(self.session_id, self.live)
        await self.channel_layer.group_add(session_group(self.session_id), self.channel_name)
        await self._mark_connected()
        await self._send({"type": "state", "state": self.live.state.value, "fps": config.fps})

    async def _switch_role(self, role_id: Any) -> dict[str, Any]:
        """Play another role of the session's tenant in place; ``switch_ms`` is the whole request's time here."""
        started = time.perf_counter()
        role, config = await self._role_config(role_id)
        try:
            await self.live.switch_role(config)
        except (EngineUnavailable, UnknownEngine, UnsupportedBundle) as exc:
            raise SessionError("engine_unavailable", report(self.session_id, "engine_unavailable", str(exc))) from exc
        await database_sync_to_async(change_role)(self.chat_session, role)
        switch_ms = round((time.perf_counter() - started) * 1000)
        if self.live.media_started:  # else the new role greets when media starts
            await self._greet()
        return {"role": role.pk, "name": role.name, "fps": config.fps, "switch_ms": switch_ms}

    async def _greet(self) -> None:
        """Say the role's greeting as its first message (stored with timings, like any ``say``); none if empty."""
        if self.live is not None and self.live.config.greeting:
            try:
                await self._say(self.live.config.greeting, interrupt=False)
            except SessionError as exc:
                await self._error(exc.code, str(exc))

    async def _refuse(self, refusal: Refused) -> None:
        await self._error(refusal.code, str(refusal))
        await self._send({"type": "closed", "reason": refusal.code})
        await self._teardown(reason=None)
        await self._close_socket(refusal.close_code)

    async def _say(self, text: Any, interrupt: bool) -> None:
        if not isinstance(text, str) or not text.strip():
            raise SessionError("bad_message", _('"say" needs a non-empty "text".'))
        if len(text) > livehuman_settings.SAY_MAX_CHARS:
            raise SessionError(
                "text_too_long",
                _("Say at most %(count)d characters at once.") % {"count": livehuman_settings.SAY_MAX_CHARS},
            )
        message_id = await self._create_message(text)
        try:
            await self.live.say(text, message_id, interrupt=interrupt)
        except PipelineFull as exc:
            await self._delete_message(message_id)
            raise SessionError("busy", str(exc)) from exc

    async def _teardown(self, reason: str | None) -> None:
        """Free the peer connection, tasks and pool references; record why the session ended. Runs once."""
        if self._torn_down:
            return
        self._torn_down = True
        try:
            if self.live is not None:
                await self.live.close()
                await self.channel_layer.group_discard(session_group(self.session_id), self.channel_name)
        finally:
            if self._reserved:
                live_sessions.release(self.session_id)
        if reason is not None and self.live is not None:
            await self._end_row(reason)

    async def _send(self, content: dict[str, Any]) -> None:
        if self._socket_open:
            await self.send_json(content)

    async def _error(self, code: str, message: str) -> None:
        await self._send({"type": "error", "code": code, "message": message})

    async def _close_socket(self, code: int = 1000) -> None:
        if self._socket_open:
            self._socket_open = False
            await self.close(code=code)

    def _api_key(self) -> str | None:
        """The key from ``?api_key=`` or ``Authorization: Api-Key <key>``; None when neither is given."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("api_key"):
            return query["api_key"][0]
        for name, value in self.scope.get("headers", []):
            if name == b"authorization":
                keyword, _sep, key = value.decode("latin-1").partition(" ")
                if keyword == "Api-Key":
                    return key.strip()
        return None

    @database_sync_to_async
    def _authorize(self) -> ChatSession:
        raw_key = self._api_key()
        if raw_key is not None:
            api_key = authenticate_api_key(raw_key)
            if api_key is None:
                raise Refused("unauthenticated", _("Invalid, revoked or expired API key."), 4401)
            tenant_scope, user = scope_for_api_key(api_key), None
        else:
            user = self.scope.get("user")
            if user is None or not user.is_authenticated:
                raise Refused("unauthenticated", _("Log in or pass an API key."), 4401)
            tenant_scope = scope_for_user(user, self.scope.get("session"))
        if tenant_scope.is_empty:
            raise Refused("forbidden", _("You belong to no active tenant."), 4403)
        session = (
            visible_sessions(tenant_scope, user)
            .select_related("role__voice", "role__avatar", "role__prompt")
            .filter(pk=self.session_id)
            .first()
        )
        if session is None:
            raise Refused("not_found", _("No such session."), 4404)
        if not session.is_open:
            raise Refused("session_ended", _("This session has ended; start a new one."), 4409)
        if not tenant_has_room(session):
            raise Refused("session_limit", _("Your organisation is at its limit of live sessions."), 4429)
        return session

    @database_sync_to_async
    def _role_config(self, role_id: Any) -> tuple[Role, SessionConfig]:
        try:
            role = switch_target(self.chat_session, role_id)
            return role, build_session_config(self.chat_session, role)
        except (RoleNotFound, RoleUnavailable, SessionUnavailable) as exc:
            raise SessionError(exc.code, str(exc)) from exc

    @database_sync_to_async
    def _mark_connected(self) -> None:
        ChatSession.objects.filter(pk=self.session_id).exclude(state=ChatSession.State.ENDED).update(
            state=ChatSession.State.CONNECTED, started_at=Coalesce(F("started_at"), Now()), worker=self.channel_name
        )

    @database_sync_to_async
    def _end_row(self, reason: str) -> None:
        self.chat_session.end(reason)

    @database_sync_to_async
    def _create_message(self, text: str) -> int:
        session = self.chat_session
        return Message.objects.create(
            tenant_id=session.tenant_id, session=session, speaker=Message.Speaker.ASSISTANT, text=text
        ).pk

    @database_sync_to_async
    def _delete_message(self, message_id: int) -> None:
        Message.objects.filter(pk=message_id).delete()

    @database_sync_to_async
    def _record_timings(self, message_id: int, timings: MessageTimings) -> None:
        Message.objects.filter(pk=message_id).update(
            text=timings.text,
            asr_ms=timings.asr_ms,
            llm_first_token_ms=timings.llm_first_token_ms,
            tts_first_audio_ms=timings.tts_first_audio_ms,
            first_frame_ms=timings.first_frame_ms,
            total_ms=timings.total_ms,
            interrupted=timings.interrupted,
        )
