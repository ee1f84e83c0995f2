"""Session business rules: who sees which sessions, opening one within the limits, ending it; and every
database write of a live session (its messages, their timings, its lifecycle), so the edges stay thin."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce, Now
from django.utils import timezone
from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.conf import livehuman_settings
from livehuman_site.tenancy.models import Tenant
from livehuman_site.tenancy.scoping import Scope
from realtime.conversation import TurnRows
from realtime.ledger import MessageTimings

from . import control
from .commands import Code, CommandError, End, SwitchRole
from .models import ChatSession, Message


class SessionLimitReached(Exception):
    """A new session would exceed the tenant's (or the worker's) concurrent-session limit."""

    code = "session_limit"


class RoleUnavailable(Exception):
    """The role is inactive or its avatar is not ready."""

    code = "role_unavailable"


def visible_sessions(scope: Scope, user: Any, sessions: QuerySet[ChatSession] | None = None) -> QuerySet[ChatSession]:
    """The sessions a caller may see: its tenant's, narrowed to a plain member's own conversations.

    Owners, admins and API keys see every session of the tenant; a member (a
    chat-page user) sees only the sessions they started, so members never read
    each other's transcripts.
    """
    sessions = scope.filter(ChatSession.objects.all() if sessions is None else sessions)
    if scope.api_key is None and not scope.can_administer:
        sessions = sessions.filter(user=user if user is not None and user.is_authenticated else None)
    return sessions


def open_session(scope: Scope, role: Role, user: Any = None) -> ChatSession:
    """Create a session for ``role`` if the tenant is under its concurrent-session limit.

    The count and the insert run under a lock on the tenant row (on SQLite the
    IMMEDIATE transaction serialises writers) so two requests cannot both take the last place.
    """
    if not role.active:
        raise RoleUnavailable(_("The role %(role)s is not active.") % {"role": role.name})
    if role.avatar is not None and not role.avatar.is_ready:
        raise RoleUnavailable(
            _("The avatar of %(role)s is not ready yet (%(status)s).")
            % {"role": role.name, "status": role.avatar.get_status_display()}
        )
    tenant = role.tenant
    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=tenant.pk)
        end_dead(ChatSession.objects.for_tenant(tenant))
        open_count = ChatSession.objects.for_tenant(tenant).open().count()
        if open_count >= tenant.max_concurrent_sessions:
            raise SessionLimitReached(
                _("This tenant already has %(count)d open sessions, its limit. End one and try again.")
                % {"count": tenant.max_concurrent_sessions}
            )
        return ChatSession.objects.create(
            tenant=tenant,
            role=role,
            user=user if user is not None and user.is_authenticated else None,
            api_key=scope.api_key,
        )


def end_unclaimed(sessions: QuerySet[ChatSession]) -> int:
    """End, as ``abandoned``, the sessions among ``sessions`` that no WebSocket claimed within
    SESSION_CLAIM_TIMEOUT_S of their creation: a page that never connected must not hold a place."""
    cutoff = timezone.now() - timedelta(seconds=livehuman_settings.SESSION_CLAIM_TIMEOUT_S)
    return sessions.filter(state=ChatSession.State.CREATED, created_at__lt=cutoff).update(
        state=ChatSession.State.ENDED, ended_at=timezone.now(), end_reason=ChatSession.EndReason.ABANDONED
    )


def end_lost(sessions: QuerySet[ChatSession]) -> int:
    """End, as ``lost``, the connected sessions among ``sessions`` whose owner has not stamped them (``heartbeat``)
    for SESSION_LOST_AFTER_S: their process died without a chance to end them (SIGKILL, a crash, a lost host)."""
    cutoff = timezone.now() - timedelta(seconds=livehuman_settings.SESSION_LOST_AFTER_S)
    last_sign_of_life = Coalesce("heartbeat_at", "started_at", "created_at")
    return (
        sessions.filter(state=ChatSession.State.CONNECTED)
        .alias(last_sign_of_life=last_sign_of_life)
        .filter(last_sign_of_life__lt=cutoff)
        .update(state=ChatSession.State.ENDED, ended_at=timezone.now(), end_reason=ChatSession.EndReason.LOST)
    )


def end_dead(sessions: QuerySet[ChatSession]) -> int:
    """End the sessions among ``sessions`` that hold a place with nothing running: never claimed, or owner lost.
    Run before every count of a tenant's sessions, so limits count only live ones, and by each process's sweep."""
    return end_unclaimed(sessions) + end_lost(sessions)


def heartbeat(session_ids: list[str]) -> dict[str, str]:
    """One beat of a process that owns sessions: stamp the rows of ``session_ids`` (the sessions it runs), end
    the dead sessions of every process (``end_dead``), and return ``{session id: end reason}`` of its own
    sessions whose rows were ended elsewhere (an ``End`` the channel layer lost, a sweep that found them late),
    for it to close."""
    own = ChatSession.objects.filter(pk__in=session_ids)
    own.filter(state=ChatSession.State.CONNECTED).update(heartbeat_at=timezone.now())
    end_dead(ChatSession.objects.all())
    return {str(pk): reason for pk, reason in own.filter(state=ChatSession.State.ENDED).values_list("pk", "end_reason")}


def end_sessions(sessions: QuerySet[ChatSession], reason: str) -> int:
    """End every open session among ``sessions``, closing each live one on whichever process owns it."""
    ended = 0
    for session in sessions.open():
        ended += end_session(session, reason)
    return ended


def tenant_has_room(session: ChatSession) -> bool:
    """May ``session`` go live? Its tenant's other live sessions must be under the tenant's limit (checked
    again at connect time: the limit may have been lowered since the session was created)."""
    end_dead(ChatSession.objects.filter(tenant_id=session.tenant_id).exclude(pk=session.pk))
    live = ChatSession.objects.filter(tenant_id=session.tenant_id, state=ChatSession.State.CONNECTED)
    return live.exclude(pk=session.pk).count() < session.tenant.max_concurrent_sessions


def switch_target(session: ChatSession, role_id: Any) -> Role:
    """The role ``session`` may switch to: one of its own tenant's, active, its avatar ready.

    Looked up in the session's tenant only, whoever asks: an id from another
    tenant is as unknown as one that does not exist.
    """
    digits = isinstance(role_id, int | str) and not isinstance(role_id, bool) and str(role_id).isdigit()
    role = (
        Role.objects.filter(tenant_id=session.tenant_id, pk=int(role_id) if digits else None)
        .select_related("voice", "avatar", "prompt")
        .first()
    )
    if role is None:
        raise CommandError(Code.ROLE_NOT_FOUND, _("No role %(role)r in this tenant.") % {"role": role_id}, "role")
    if not role.active:
        raise CommandError(Code.ROLE_UNAVAILABLE, _("The role %(role)s is not active.") % {"role": role.name})
    if role.avatar is None or not role.avatar.is_ready:
        raise CommandError(Code.ROLE_UNAVAILABLE, _("The role %(role)s has no ready avatar.") % {"role": role.name})
    return role


def change_role(session: ChatSession, role: Role) -> None:
    """Record that ``session`` now plays ``role`` (the live switch is the owner's job)."""
    ChatSession.objects.filter(pk=session.pk).update(role=role)
    session.role = role


def switch_role(session: ChatSession, command: SwitchRole) -> dict[str, Any]:
    """Make ``session`` play the command's role: live, by its owner, when it is connected, else in the stored row
    (its media starts as that role when it connects). Returns the owner's ``{role, name, fps, switch_ms}``, empty
    when not live. Raises ``CommandError``."""
    if session.state != ChatSession.State.CONNECTED:
        if session.state == ChatSession.State.ENDED:
            raise CommandError(Code.SESSION_ENDED, _("This session has ended; start a new one."))
        change_role(session, switch_target(session, command.role))
        return {}
    switched = control.run(session, command)
    session.refresh_from_db(fields=["role"])
    return {key: switched[key] for key in ("role", "fps", "switch_ms")}


def end_session(session: ChatSession, reason: str = ChatSession.EndReason.CLIENT) -> bool:
    """End a session (once), closing its live connection wherever it runs; False when it had already ended."""
    was_connected = session.state == ChatSession.State.CONNECTED
    ended = session.end(reason)
    if ended and was_connected:
        control.post(session, End())
    return ended


def mark_connected(session: ChatSession, worker: str) -> None:
    """The session's media now lives on this process (``worker``: its consumer's channel name)."""
    ChatSession.objects.filter(pk=session.pk).exclude(state=ChatSession.State.ENDED).update(
        state=ChatSession.State.CONNECTED,
        started_at=Coalesce(F("started_at"), Now()),
        worker=worker,
        heartbeat_at=timezone.now(),
    )


def add_assistant_message(session: ChatSession, text: str) -> int:
    """The row of a text the avatar is about to say; its timings follow in ``record_timings``."""
    return Message.objects.create(
        tenant_id=session.tenant_id, session=session, speaker=Message.Speaker.ASSISTANT, text=text
    ).pk


def discard_message(message_id: int) -> None:
    """A message that never went on air (its ``say`` was refused)."""
    Message.objects.filter(pk=message_id).delete()


def start_turn(session: ChatSession, text: str, asr_ms: int) -> TurnRows:
    """The user's spoken turn and an empty assistant message for the answer, in one transaction (one round trip's
    worth of work: this wait is part of the answer's latency)."""
    rows = {"tenant_id": session.tenant_id, "session": session}
    with transaction.atomic():
        user = Message.objects.create(**rows, speaker=Message.Speaker.USER, text=text, asr_ms=asr_ms)
        answer = Message.objects.create(**rows, speaker=Message.Speaker.ASSISTANT, text="")
    return TurnRows(user.pk, answer.pk)


def record_timings(message_id: int, timings: MessageTimings) -> None:
    """What was said (all of it, or up to the cut) and each stage's time; the fields are the same names."""
    Message.objects.filter(pk=message_id).update(**asdict(timings))
