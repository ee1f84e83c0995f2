"""SessionOwner: this process's side of one live session — it opens the ``LiveSession``, runs the commands that
reach it (from its WebSocket or, through the channel layer, from REST), and turns the session's events into
messages for the socket and rows in the database.

Order on open: authorize (the scope's API key or login) → find the session
through the caller's tenant scope → take a place under the per-worker cap →
only then load engines; the peer connection is made when the offer arrives.
The tenant's cap was enforced when the session was created over REST, and is
checked again here against the tenant's live sessions (any process).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any, Protocol

import structlog
from channels.db import database_sync_to_async
from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.conf import livehuman_settings
from livehuman_site.outbound import outbound_policy
from livehuman_site.tenancy.models import APIKeyScope
from livehuman_site.tenancy.scoping import scope_for_api_key, scope_for_user
from realtime.avatar.format import UnsupportedBundle
from realtime.conversation import TurnRows
from realtime.engines.base import EngineUnavailable
from realtime.engines.registry import UnknownEngine
from realtime.errors import SessionError
from realtime.frame_size import ShownSize
from realtime.ledger import MessageTimings
from realtime.metrics import ERRORS
from realtime.pipeline import PipelineFull
from realtime.session import LiveSession

from . import heartbeat, services
from .client_errors import language_from_scope, report
from .commands import (
    Code,
    Command,
    CommandError,
    End,
    Interrupt,
    Say,
    SetTalkMode,
    StartRtmp,
    StopRtmp,
    SwitchRole,
    Talk,
    VideoSize,
    parse_command,
)
from .live_sessions import AlreadyLive, WorkerFull, live_sessions
from .models import ChatSession
from .preload import preload_once
from .session_factory import SessionUnavailable, build_session_config, get_pool

logger = logging.getLogger(__name__)

LOAD_ERRORS = (SessionUnavailable, EngineUnavailable, UnknownEngine, UnsupportedBundle)
# WebSocket close codes of a server-side end (daphne accepts only 1000 and 3000-4999 from an application)
SERVER_ERROR = 4500
GOING_AWAY = 4503  # the server is stopping: start a new session, which another server may run


class Refused(Exception):
    """The connection is refused: sent as ``error`` then ``closed``, and the socket closes with ``close_code``."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code


class Socket(Protocol):
    """What the owner needs of its WebSocket (the consumer)."""

    async def send_event(self, content: dict[str, Any]) -> None: ...

    async def close_socket(self, code: int = 1000) -> None: ...


class SessionOwner:
    """One chat session's live media on this process, as seen by its WebSocket."""

    def __init__(self, session_id: str, socket: Socket) -> None:
        self.session_id = session_id
        self.socket = socket
        self.chat_session: ChatSession | None = None
        self.live: LiveSession | None = None
        self._reserved = False
        self._torn_down = False
        self.language: str | None = None  # the client's, for the fixed error sentences it is sent

    def _report(self, code: str, detail: str) -> str:
        """Log an engine's own words with the session id; the client's sentence for ``code`` instead."""
        return report(self.session_id, code, detail, self.language)

    async def open(self, scope: dict[str, Any], worker: str) -> None:
        """Authorize, take a place, load the engines and start the media. Raises ``Refused``."""
        self.language = language_from_scope(scope)
        await self.start(await database_sync_to_async(authorize)(self.session_id, scope), worker)

    async def start(self, chat_session: ChatSession, worker: str) -> None:
        """Take a place, load the engines and start the media of an authorized session. Raises ``Refused``."""
        self.chat_session = chat_session
        try:
            live_sessions.reserve(self, livehuman_settings.MAX_SESSIONS_PER_WORKER)
        except AlreadyLive as exc:
            raise Refused(exc.code, _("This session is already connected."), 4409) from exc
        except WorkerFull as exc:
            raise Refused(exc.code, _("This server is at its session limit; try again shortly."), 4429) from exc
        self._reserved = True
        heartbeat.ensure_running()  # this process now owns a session: it stamps its row from here on
        try:
            config = await database_sync_to_async(build_session_config)(self.chat_session)
            # Every log line of this session from here on (its tasks inherit this context) names it and its tenant.
            structlog.contextvars.bind_contextvars(session_id=self.session_id, tenant=config.tenant)
            if livehuman_settings.PRELOAD_ROLES:
                preload_once(get_pool())
            self.live = await LiveSession.open(config, get_pool(), self)
        except LOAD_ERRORS as exc:
            await database_sync_to_async(self.chat_session.end)(ChatSession.EndReason.ERROR)
            message = self._report(Code.ENGINE_UNAVAILABLE, str(exc))
            raise Refused(Code.ENGINE_UNAVAILABLE, message, 4503) from exc
        logger.info("session started: role %s at %d fps", config.role_name, config.fps)
        await database_sync_to_async(services.mark_connected)(self.chat_session, worker)

    async def announce(self) -> None:
        """The first ``state``: sent once the owner can be reached (its consumer has joined the session's group),
        so a client that acts on it over REST at once finds the session live."""
        await self.state_changed(self.live.state.value)

    # --- signaling -------------------------------------------------------------------------------------------

    async def offer(self, sdp: Any) -> None:
        if not isinstance(sdp, str) or not sdp:
            raise SessionError(Code.BAD_MESSAGE, _('"offer" needs an "sdp" string.'))
        await self.socket.send_event({"type": "answer", "sdp": await self.live.accept_offer(sdp)})

    async def candidate(self, candidate: Any, sdp_mid: Any, sdp_mline_index: Any) -> None:
        index = sdp_mline_index if isinstance(sdp_mline_index, int) else None
        await self.live.add_candidate(str(candidate or ""), sdp_mid, index)

    # --- commands --------------------------------------------------------------------------------------------

    async def run(self, command: Command) -> dict[str, Any]:
        """Run ``command`` here, where the media lives; returns its result. Raises ``CommandError``."""
        if self.live is None or self._torn_down:
            raise CommandError(Code.NOT_LIVE, _("The session is not connected."))
        match command:
            case Say(text=text, interrupt=interrupt):
                return {"message_id": await self._say(text, interrupt)}
            case Interrupt():
                await self.live.interrupt()
            case SwitchRole(role=role):
                return await self._switch_role(role)
            case SetTalkMode(talk=mode):
                self.live.set_talk_mode(mode)
            case Talk(on=on):
                self.live.set_talking(on)
            case End():
                await self.ended(ChatSession.EndReason.CLIENT)
            case StartRtmp(url=url):
                return (await self.live.start_rtmp(url, outbound_policy())).as_dict()
            case StopRtmp():
                await self.live.stop_rtmp()
            case VideoSize(width=width, height=height):
                self.live.set_shown_size(ShownSize(width, height))
        return {}

    async def answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """Run a command that came over the channel layer (``control.run``); returns the reply for its caller."""
        try:
            command = parse_command(message.get("type", ""), message)
            return {"ok": True, "result": await self.run(command)}
        except CommandError as exc:
            return exc.as_reply()
        except Exception:  # a crash here would leave the caller waiting for its timeout
            logger.exception("session %s: %s failed", self.session_id, message.get("type"))
            return CommandError(Code.INTERNAL_ERROR, _("The server could not handle that command.")).as_reply()

    async def role_changed(self, role_ids: list[int]) -> None:
        """The session's role was saved with new settings somewhere (``live_config``): play them now, and tell
        the page what changed. Other roles' changes are not this session's business."""
        if self.live is None or self._torn_down or self.live.config.role_id not in role_ids:
            return
        try:
            config = await database_sync_to_async(self._current_role_config)()
            changed = await self.live.reconfigure(config)
        except LOAD_ERRORS as exc:
            await self.error(Code.ENGINE_UNAVAILABLE, str(exc))
            return
        if changed:
            await self.socket.send_event(
                {
                    "type": "role_updated",
                    "role": config.role_id,
                    "name": config.role_name,
                    "fps": config.fps,
                    "changed": changed,
                }
            )

    def _current_role_config(self) -> Any:
        role = Role.objects.select_related("avatar", "voice", "prompt").get(pk=self.live.config.role_id)
        return build_session_config(self.chat_session, role)

    def snapshot(self) -> dict[str, Any] | None:
        """The live ``{state, role, fps, speaking_text}``; None when there is no live session here."""
        return None if self.live is None or self._torn_down else self.live.snapshot()

    async def _say(self, text: str, interrupt: bool) -> int:
        message_id = await database_sync_to_async(services.add_assistant_message)(self.chat_session, text)
        try:
            await self.live.say(text, message_id, interrupt=interrupt)
        except PipelineFull as exc:
            await database_sync_to_async(services.discard_message)(message_id)
            message = _("Too much is queued already; interrupt, or wait until the avatar has said some of it.")
            raise CommandError(Code.BUSY, message) from exc
        return message_id

    async def _switch_role(self, role_id: int) -> dict[str, Any]:
        """Play another role of the session's tenant in place; ``switch_ms`` is the whole request's time here.
        The page hears of it as ``role``, whoever asked."""
        started = time.perf_counter()
        role, config = await database_sync_to_async(self._role_config)(role_id)
        try:
            await self.live.switch_role(config)
        except LOAD_ERRORS as exc:
            raise CommandError(Code.ENGINE_UNAVAILABLE, self._report(Code.ENGINE_UNAVAILABLE, str(exc))) from exc
        await database_sync_to_async(services.change_role)(self.chat_session, role)
        switch_ms = round((time.perf_counter() - started) * 1000)
        if self.live.media_started:  # else the new role greets when media starts
            await self._greet()
        switched = {"role": role.pk, "name": role.name, "fps": config.fps, "switch_ms": switch_ms}
        await self.socket.send_event({"type": "role", **switched})
        return switched

    def _role_config(self, role_id: int) -> tuple[Any, Any]:
        role = services.switch_target(self.chat_session, role_id)
        try:
            return role, build_session_config(self.chat_session, role)
        except SessionUnavailable as exc:
            raise CommandError(Code.ROLE_UNAVAILABLE, str(exc)) from exc

    async def _greet(self) -> None:
        """Say the role's greeting as its first message (stored with timings, like any ``say``); none if empty."""
        if self.live is not None and self.live.config.greeting:
            try:
                await self._say(self.live.config.greeting, interrupt=False)
            except CommandError as exc:
                await self.notify_error(exc.code, str(exc))

    # --- SessionEvents (from the LiveSession) -----------------------------------------------------------------

    async def state_changed(self, state: str) -> None:
        live = self.live
        await self.socket.send_event(
            {"type": "state", "state": state, "fps": live.rate.fps, "degrade": live.degrade_state()}
        )

    async def subtitle(self, text: str, message_id: int) -> None:
        await self.socket.send_event({"type": "subtitle", "text": text, "message_id": message_id})

    async def message_finished(self, message_id: int, timings: MessageTimings) -> None:
        await database_sync_to_async(services.record_timings)(message_id, timings)
        wire = {key: value for key, value in asdict(timings).items() if key != "text"}
        await self.socket.send_event({"type": "timings", "message_id": message_id, **wire})

    async def media_started(self) -> None:
        await self._greet()

    async def transcript(self, text: str, final: bool, message_id: int | None) -> None:
        await self.socket.send_event({"type": "transcript", "text": text, "final": final, "message_id": message_id})

    async def start_turn(self, text: str, asr_ms: int) -> TurnRows:
        return await database_sync_to_async(services.start_turn)(self.chat_session, text, asr_ms)

    async def error(self, code: str, message: str) -> None:
        """An engine or task failed (engine text goes to the log; the page gets a fixed sentence)."""
        await self.notify_error(code, self._report(code, message))

    async def notify_error(self, code: str, message: str) -> None:
        """Tell the page that its request failed: ``message`` is already fit to show."""
        ERRORS.labels(code).inc()
        await self.socket.send_event({"type": "error", "code": code, "message": message})

    async def ended(self, reason: str, close_code: int = 1000) -> None:
        """End the session for ``reason``: tell the page, free everything, record it, close the socket. Once."""
        if self._torn_down:
            return
        await self.socket.send_event({"type": "closed", "reason": reason})
        await self.teardown(reason)
        await self.socket.close_socket(close_code)

    # --- the end ---------------------------------------------------------------------------------------------

    async def failed(self) -> None:
        """Something under the session broke (its consumer crashed, the channel layer failed under it): the page
        is told and the session ends as ``error``, its place freed."""
        if self._torn_down:
            return
        await self.notify_error(Code.INTERNAL_ERROR, _("The server failed and ended this session; start a new one."))
        await self.ended(ChatSession.EndReason.ERROR, close_code=SERVER_ERROR)

    async def refuse(self, refusal: Refused) -> None:
        await self.notify_error(refusal.code, str(refusal))
        await self.socket.send_event({"type": "closed", "reason": refusal.code})
        await self.teardown(reason=None)
        await self.socket.close_socket(refusal.close_code)

    async def teardown(self, reason: str | None) -> None:
        """Free the peer connection, tasks and pool references; record why the session ended. Runs once."""
        if self._torn_down:
            return
        self._torn_down = True
        try:
            if self.live is not None:
                await self.live.close()
        finally:
            if self._reserved:
                live_sessions.release(self.session_id)
            if reason is not None and self.live is not None:
                logger.info("session ended: %s", reason)
                await database_sync_to_async(self.chat_session.end)(reason)


def authorize(session_id: str, scope: dict[str, Any]) -> ChatSession:
    """The session ``scope``'s caller may open (its ticket's, API key's or login's tenant); raises ``Refused``."""
    if scope.get("api_key_invalid"):
        raise Refused("unauthenticated", _("Invalid, revoked or expired API key."), 4401)
    if (refused_ticket := scope.get("ticket_refused")) is not None:
        raise Refused(refused_ticket.code, str(refused_ticket), 4401)
    if (ticket := scope.get("ticket")) is not None and str(ticket.session_id) != str(session_id):
        raise Refused("ticket_other_session", _("This ticket opens another session."), 4403)
    api_key, user = scope.get("api_key"), None
    if api_key is not None:
        if APIKeyScope.SESSIONS not in api_key.scopes:
            raise Refused("api_key_scope", _("This API key may not run sessions: it lacks the sessions scope."), 4403)
        tenant_scope = scope_for_api_key(api_key)
    else:
        user = scope.get("user")
        if user is None or not user.is_authenticated:
            raise Refused("unauthenticated", _("Log in or pass an API key."), 4401)
        tenant_scope = scope_for_user(user, scope.get("session"))
    if tenant_scope.is_empty:
        raise Refused("forbidden", _("You belong to no active tenant."), 4403)
    session = (
        services.visible_sessions(tenant_scope, user)
        .select_related("role__voice", "role__avatar", "role__prompt", "tenant")
        .filter(pk=session_id)
        .first()
    )
    if session is None:
        raise Refused("not_found", _("No such session."), 4404)
    if not session.is_open:
        raise Refused(Code.SESSION_ENDED, _("This session has ended; start a new one."), 4409)
    if not services.tenant_has_room(session):
        raise Refused("session_limit", _("Your organisation is at its limit of live sessions."), 4429)
    return session
