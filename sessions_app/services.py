"""Session business rules: opening a session within the limits, ending it, listing its messages."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from avatars_app.models import Role
from livehuman_site.tenancy.scoping import Scope

from .models import ChatSession


class SessionLimitReached(Exception):
    """A new session would exceed the tenant's (or the worker's) concurrent-session limit."""

    code = "session_limit"


class RoleUnavailable(Exception):
    """The role is inactive or its avatar is not ready."""

    code = "role_unavailable"


def open_session(scope: Scope, role: Role, user=None) -> ChatSession:
    """Create a session for ``role`` if the tenant is under its concurrent-session limit.

    The count and the insert run under a lock on the tenant row so two requests
    cannot both take the last place.
    """
    if not role.active:
        raise RoleUnavailable(_("The role %(role)s is not active.") % {"role": role.name})
    tenant = role.tenant
    with transaction.atomic():
        type(tenant).objects.select_for_update().get(pk=tenant.pk)
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


def end_session(session: ChatSession, reason: str = ChatSession.EndReason.CLIENT) -> bool:
    return session.end(reason)
