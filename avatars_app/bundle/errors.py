"""Why a build stopped: an input the operator must fix, told in words they can act on."""

from __future__ import annotations


class BadVideo(ValueError):
    """The uploaded file cannot become an avatar. ``code`` is stable (API clients and tests match on it);
    the message is for people and says what to change. Never retried: the same file fails the same way."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message
