"""The speaking state machine of one session: idle, listening, thinking, speaking (DESIGN.md §7 ``state``).

Speaking wins: from the first frame of a message on air until the last
queued message has played or an interrupt cut everything. Else listening
while the user talks, thinking while a turn waits for its transcript or an
answer waits for its first frame, idle otherwise. It is told what happened
(events) and calls ``on_change`` with each new state.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class SpeakingState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"  # the user is talking
    THINKING = "thinking"  # the user's turn ended; the answer is not on air yet
    SPEAKING = "speaking"


class Speaking:
    """The state, the sentence on air, and when the state last changed (for the idle timeout)."""

    def __init__(
        self, *, now: Callable[[], float], pending: Callable[[], bool], on_change: Callable[[SpeakingState], None]
    ) -> None:
        self._now = now
        self._pending = pending  # messages are open (queued, on their way to the air, or on air)
        self._on_change = on_change
        self.state = SpeakingState.IDLE
        self.last_activity = now()
        self.speaking_text = ""
        self._on_air = False  # a message has gone on air and messages are still queued or playing
        self._listening = False  # a turn was accepted and has not ended
        self._recognising = 0  # turns that ended and wait for their final transcript

    def sentence_on_air(self, text: str) -> None:
        self.speaking_text = text.strip()  # the splitter leaves the space after a sentence on its chunk
        self._on_air = True
        self.refresh()

    def message_played(self) -> None:
        if not self._pending():
            self._on_air = False
        self.refresh()

    def cut(self) -> None:
        self._on_air = False
        self.refresh()

    def speech_started(self) -> None:
        self._listening = True
        self.refresh()

    def turn_ended(self) -> None:
        self._listening = False
        self._recognising += 1
        self.refresh()

    def turn_recognised(self) -> None:
        self._recognising -= 1
        self.refresh()

    def refresh(self) -> None:
        """Recompute the state after something changed (a message was queued, say)."""
        if self._on_air:
            state = SpeakingState.SPEAKING
        elif self._listening:
            state = SpeakingState.LISTENING
        elif self._pending() or self._recognising:
            state = SpeakingState.THINKING
        else:
            state = SpeakingState.IDLE
        if state is self.state:
            return
        self.state = state
        self.last_activity = self._now()
        if state is not SpeakingState.SPEAKING:
            self.speaking_text = ""
        self._on_change(state)
