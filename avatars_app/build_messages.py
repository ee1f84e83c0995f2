"""An avatar's build error and warnings in the reader's language (the active translation: the admin user's, or
the API request's Accept-Language). The build stores each message untranslated (realtime/avatar/messages.py);
rows from before it did show their stored English text. A ready avatar whose bundle this version cannot read
(built by an older one, files gone) shows why, from the bundle reader's ``UnsupportedBundle``."""

from __future__ import annotations

from django.utils.translation import gettext, pgettext

from realtime.avatar.format import Manifest, UnsupportedBundle
from realtime.avatar.messages import Message

from .models import Avatar
from .services import bundle_location


def translated(message: Message) -> str:
    """``message`` in the active language; a nested list of messages is joined the way that language lists."""
    return message.render(gettext, pgettext("list separator", ", "))


def avatar_error(avatar: Avatar) -> str:
    """Why the avatar cannot be used: its build's error, or why its ready bundle cannot be read; "" if it can."""
    if avatar.error_message:
        return translated(Message.from_json(avatar.error_message))
    return avatar.error or _unreadable_bundle(avatar)


def _unreadable_bundle(avatar: Avatar) -> str:
    if not avatar.is_ready:
        return ""
    try:
        Manifest.read(bundle_location(avatar))
    except UnsupportedBundle as exc:
        return translated(exc.message)
    return ""


def avatar_warnings(avatar: Avatar) -> list[str]:
    if avatar.warning_messages:
        return [translated(Message.from_json(warning)) for warning in avatar.warning_messages]
    return [line for line in avatar.warnings.splitlines() if line]
