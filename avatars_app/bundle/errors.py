"""Why a build stopped: an input the operator must fix, told in words they can act on, in their language."""

from __future__ import annotations

from realtime.avatar.messages import Message, Param


class BadVideo(ValueError):
    """The uploaded file cannot become an avatar. ``code`` is stable (API clients and tests match on it);
    ``message`` is for people and says what to change: an English template (marked with ``gettext_noop``) and
    its parameters, translated when it is shown. Never retried: the same file fails the same way.

    The parameters are facts about the upload (sizes, seconds, counts), never an exception's text: library
    errors go to the log, not to tenants."""

    def __init__(self, code: str, msgid: str, **params: Param) -> None:
        self.code = code
        self.message = Message(msgid, params)
        super().__init__(str(self.message))

    def __str__(self) -> str:
        return str(self.message)
