"""Session business rules: who sees which sessions, opening one within the limits, ending it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.tenancy.models import Tenant
from livehuman_site.tenancy.scoping import Scope

from . import control
from .models import ChatSession


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


def tenant_has_room(session: ChatSession) -> bool:
    """May ``session`` go live? Its tenant's other connected sessions must be under the tenant's limit (checked
    again at connect time: the limit may have been lowered since the session was created)."""
    live = ChatSession.objects.filter(tenant_id=session.tenant_id, state=ChatSession.State.CONNECTED)
    return live.exclude(pk=session.pk).count() < session.tenant.max_concurrent_sessions


class RoleNotFound(Exception):
    """No role with that id in the session's tenant."""

    code = "role_not_found"


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
        raise RoleNotFound(_("No role %(role)r in this tenant.") % {"role": role_id})
    if not role.active:
        raise RoleUnavailable(_("The role %(role)s is not active.") % {"role": role.name})
    if role.avatar is None or not role.avatar.is_ready:
        raise RoleUnavailable(_("The role %(role)s has no ready avatar.") % {"role": role.name})
    return role


def change_role(session: ChatSession, role: Role) -> None:
    """Record that ``session`` now plays ``role`` (the live switch is the owner's job)."""
    ChatSession.objects.filter(pk=session.pk).update(role=role)
    session.role = role


def switch_role(session: ChatSession, role: Role) -> dict[str, Any]:
    """Make ``session`` play ``role`` (from ``switch_target``): live, by its owner, when it is connected, else in
    the stored row (its media starts as that role when it connects). Returns the owner's ``{role, fps,
    switch_ms}``, empty when not live. Raises ``control.SessionNotLive`` and ``control.SwitchRefused``."""
    if session.state == ChatSession.State.ENDED:
        raise control.SessionNotLive(_("The session has ended."))
    if session.state != ChatSession.State.CONNECTED:
        change_role(session, role)
        return {}
    return control.switch_role(session, role)


def end_session(session: ChatSession, reason: str = ChatSession.EndReason.CLIENT) -> bool:
    """End a session (once), closing its live connection wherever it runs; False when it had already ended."""
    was_connected = session.state == ChatSession.State.CONNECTED
    ended = session.end(reason)
    if ended and was_connected:
        control.close(session)
    return ended
