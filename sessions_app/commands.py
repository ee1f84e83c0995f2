"""The commands a live session takes, defined once for the WebSocket and for REST (DESIGN.md §7).

Each command is a small dataclass; ``parse_command`` turns a message body (the
WebSocket's JSON object, or a REST request's data) into one, or raises
``CommandError`` with one of the codes below. The WebSocket consumer runs what
it parses on the spot; REST sends the parsed command through the channel layer
to the process that owns the session (``control.run``), which runs it the same
way and answers. The answer's ``code`` is the same wherever the command came from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar

from django.utils.translation import gettext as _

from livehuman_site.conf import livehuman_settings
from livehuman_site.outbound import outbound_policy, refusal_message
from realtime.conversation import TalkMode
from realtime.frame_size import MAX_SHOWN
from realtime.net.outbound import OutboundRefused
from realtime.rtmp import check_rtmp_url


class Code(StrEnum):
    """Error codes of commands, for the WebSocket's ``error {code}`` and REST's ``{"error": {"code"}}``."""

    BAD_MESSAGE = "bad_message"  # malformed: a missing or wrong field
    TEXT_TOO_LONG = "text_too_long"
    ROLE_NOT_FOUND = "role_not_found"
    ROLE_UNAVAILABLE = "role_unavailable"
    ENGINE_UNAVAILABLE = "engine_unavailable"
    BAD_URL = "bad_url"  # an RTMP URL the outbound policy refuses (the message says why)
    BAD_VIDEO_SIZE = "bad_video_size"  # a shown size that is not two whole numbers of pixels within limits
    BUSY = "busy"  # too much is queued already: try again when the avatar has said some of it
    NOT_LIVE = "not_live"  # no process owns the session's media (not connected yet, or its worker is gone)
    SESSION_ENDED = "session_ended"
    INTERNAL_ERROR = "internal_error"


class CommandError(Exception):
    """A command that cannot be run. ``field`` names the bad part of the body (a client error, REST's 400);
    without it the session's state refused it (REST's 409)."""

    def __init__(self, code: Code | str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = str(code)
        self.field = field

    def as_reply(self) -> dict[str, Any]:
        return {"ok": False, "code": self.code, "message": str(self), "field": self.field}


@dataclass(frozen=True)
class Command:
    """Base of the commands; ``kind`` is the message ``type`` on the WebSocket (and the REST action)."""

    kind: ClassVar[str]

    def to_message(self) -> dict[str, Any]:
        """The body that ``parse_command`` turns back into this command (what crosses the channel layer)."""
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Say(Command):
    """Speak ``text`` after what is queued, or instead of it with ``interrupt``."""

    kind = "say"
    text: str
    interrupt: bool = False


@dataclass(frozen=True)
class Interrupt(Command):
    """Stop speaking now and drop everything queued."""

    kind = "interrupt"


@dataclass(frozen=True)
class SwitchRole(Command):
    """Play another role of the session's tenant in place."""

    kind = "switch_role"
    role: int


@dataclass(frozen=True)
class SetTalkMode(Command):
    """Push-to-talk or hands-free (the page's ``mode {talk}``)."""

    kind = "mode"
    talk: TalkMode


@dataclass(frozen=True)
class Talk(Command):
    """The push-to-talk button: ``on`` while held."""

    kind = "talk"
    on: bool


@dataclass(frozen=True)
class End(Command):
    """End the session: close its media and its socket, and record why."""

    kind = "end"


@dataclass(frozen=True)
class StartRtmp(Command):
    """Also stream the session to an RTMP URL (replacing a stream already running)."""

    kind = "rtmp_start"
    url: str


@dataclass(frozen=True)
class StopRtmp(Command):
    """Stop the RTMP stream; the session goes on."""

    kind = "rtmp_stop"


@dataclass(frozen=True)
class VideoSize(Command):
    """The page shows the video in an element ``width`` × ``height`` device pixels big (CSS px ×
    devicePixelRatio): frames are sent no larger (``realtime.frame_size``)."""

    kind = "video_size"
    width: int
    height: int


def checked_rtmp_url(url: Any) -> str:
    """``url`` if the outbound policy lets the server stream there (rtmp/rtmps); else ``CommandError`` on "url"."""
    if not isinstance(url, str) or not url.strip():
        raise CommandError(Code.BAD_URL, _("An RTMP URL is needed (rtmp:// or rtmps://)."), "url")
    try:
        check_rtmp_url(url.strip(), outbound_policy())
    except OutboundRefused as refused:
        raise CommandError(Code.BAD_URL, refusal_message(refused), "url") from None
    return url.strip()


def _say(body: Mapping[str, Any]) -> Say:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise CommandError(Code.BAD_MESSAGE, _('"say" needs a non-empty "text".'), "text")
    limit = livehuman_settings.SAY_MAX_CHARS
    if len(text) > limit:
        raise CommandError(
            Code.TEXT_TOO_LONG, _("Say at most %(count)d characters at once.") % {"count": limit}, "text"
        )
    interrupt = body.get("interrupt", False)
    if not isinstance(interrupt, bool):
        raise CommandError(Code.BAD_MESSAGE, _('"interrupt" is true or false.'), "interrupt")
    return Say(text, interrupt)


def _switch_role(body: Mapping[str, Any]) -> SwitchRole:
    role = body.get("role")
    digits = isinstance(role, int | str) and not isinstance(role, bool) and str(role).isdigit()
    if not digits or int(role) < 1:
        raise CommandError(Code.ROLE_NOT_FOUND, _("No role %(role)r in this tenant.") % {"role": role}, "role")
    return SwitchRole(int(role))


def _mode(body: Mapping[str, Any]) -> SetTalkMode:
    try:
        return SetTalkMode(TalkMode(body.get("talk")))
    except ValueError:
        raise CommandError(Code.BAD_MESSAGE, _('"mode" needs "talk": "push" or "hands_free".'), "talk") from None


def _video_size(body: Mapping[str, Any]) -> VideoSize:
    sides = []
    for side in ("width", "height"):
        value = body.get(side)
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not number or not 1 <= value <= MAX_SHOWN:
            raise CommandError(
                Code.BAD_VIDEO_SIZE,
                _('"video_size" needs "width" and "height" in device pixels, 1 to %(most)d.') % {"most": MAX_SHOWN},
                side,
            )
        sides.append(round(value))
    return VideoSize(*sides)


PARSERS: dict[str, Any] = {
    Say.kind: _say,
    Interrupt.kind: lambda body: Interrupt(),
    SwitchRole.kind: _switch_role,
    SetTalkMode.kind: _mode,
    Talk.kind: lambda body: Talk(bool(body.get("on"))),
    End.kind: lambda body: End(),
    StartRtmp.kind: lambda body: StartRtmp(checked_rtmp_url(body.get("url"))),
    StopRtmp.kind: lambda body: StopRtmp(),
    VideoSize.kind: _video_size,
}


def parse_command(kind: str, body: Mapping[str, Any]) -> Command:
    """The command ``kind`` with the arguments in ``body``; raises ``CommandError`` (``bad_message`` when the kind
    is unknown)."""
    parser = PARSERS.get(kind)
    if parser is None:
        raise CommandError(Code.BAD_MESSAGE, _("Unknown message type %(type)r.") % {"type": kind})
    return parser(body)
