"""An avatar's build error and warnings in the reader's language (the active translation: the admin user's, or
the API request's Accept-Language). The build stores each message untranslated (realtime/avatar/messages.py);
rows from before it did show their stored English text."""

from __future__ import annotations

from django.utils.translation import gettext, pgettext

from realtime.avatar.messages import Message

from .models import Avatar


def translated(message: Message) -> str:
    """``message`` in the active language; a nested list of messages is joined the way that language lists."""
    return message.render(gettext, pgettext("list separator", ", "))


def avatar_error(avatar: Avatar) -> str:
    if avatar.error_message:
        return translated(Message.from_json(avatar.error_message))
    return avatar.error


def avatar_warnings(avatar: Avatar) -> list[str]:
    if avatar.warning_messages:
        return [translated(Message.from_json(warning)) for warning in avatar.warning_messages]
    return [line for line in avatar.warnings.splitlines() if line]
