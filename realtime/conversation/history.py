"""The conversation so far, as the LLM sees it: the user's turns and what the avatar really said."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Turn:
    role: str
    content: str
    message_id: int | None


class History:
    """User and assistant turns of one session, oldest first.

    An assistant turn is keyed by its Message id so that an interrupt can
    replace the answer's full text with the part that was spoken (or drop it
    when nothing was). The LLM engine trims it to its budget (``history_window``).
    """

    def __init__(self) -> None:
        self._turns: list[_Turn] = []

    def add_user(self, text: str) -> None:
        self._turns.append(_Turn("user", text, None))

    def set_assistant(self, message_id: int | None, text: str) -> None:
        """Record (or correct) what the avatar said as message ``message_id``; empty text removes the turn."""
        same = [turn for turn in self._turns if message_id is not None and turn.message_id == message_id]
        existing = same[0] if same else None
        if existing is None:
            if text:
                self._turns.append(_Turn("assistant", text, message_id))
        elif text:
            existing.content = text
        else:
            self._turns.remove(existing)

    def messages(self) -> list[dict]:
        """The turns as chat messages (``{"role", "content"}``), oldest first."""
        return [{"role": turn.role, "content": turn.content} for turn in self._turns]
