"""The error a live session's requests raise when the session cannot honour them in its current state."""

from __future__ import annotations


class SessionError(Exception):
    """A request the session cannot honour in its current state; ``code`` goes to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
