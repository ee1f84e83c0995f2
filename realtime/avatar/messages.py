"""A build message (an error or a warning) kept as its English template and parameters, so that each reader
sees it in their own language.

The avatar build runs in a worker with no reader, and a bundle's warnings outlive the request that built it:
so nothing is translated when a message is made. It is stored as ``{"msgid": ..., "params": {...}}`` and
rendered when it is shown (avatars_app/build_messages.py passes Django's gettext). Templates use
``%(name)s``-style placeholders, as Django's catalogs do; a parameter may itself be a message, or a list of
messages joined with the reader's list separator.

realtime/ never imports Django: templates are marked with the ``gettext_noop`` below, which is the name
``makemessages`` extracts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

Param = Union[str, int, float, "Message", list["Message"]]


def gettext_noop(text: str) -> str:
    """Marks ``text`` as a msgid for ``makemessages`` and returns it unchanged."""
    return text


def _identity(text: str) -> str:
    return text


@dataclass(frozen=True)
class Message:
    """``msgid`` is the English template; ``params`` fill its placeholders (numbers, names, or messages)."""

    msgid: str
    params: dict[str, Param] = field(default_factory=dict)

    def render(self, translate: Callable[[str], str] = _identity, separator: str = ", ") -> str:
        """The text, each template passed through ``translate`` (English when left out)."""
        text = translate(self.msgid)
        if not self.params:
            return text
        return text % {name: _render_param(value, translate, separator) for name, value in self.params.items()}

    def __str__(self) -> str:
        return self.render()

    def to_json(self) -> dict[str, Any]:
        return {"msgid": self.msgid, "params": {name: _param_json(value) for name, value in self.params.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Message:
        """The message ``to_json`` wrote; a plain string (a bundle or row from before messages were kept this
        way) is a message without parameters, shown as it is."""
        if isinstance(data, str):
            return cls(data)
        return cls(data["msgid"], {name: _param_from_json(value) for name, value in data.get("params", {}).items()})


def _render_param(value: Param, translate: Callable[[str], str], separator: str) -> str | int | float:
    if isinstance(value, Message):
        return value.render(translate, separator)
    if isinstance(value, list):
        return separator.join(item.render(translate, separator) for item in value)
    return value


def _param_json(value: Param) -> Any:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, list):
        return [item.to_json() for item in value]
    return value


def _param_from_json(value: Any) -> Param:
    if isinstance(value, dict):
        return Message.from_json(value)
    if isinstance(value, list):
        return [Message.from_json(item) for item in value]
    return value
