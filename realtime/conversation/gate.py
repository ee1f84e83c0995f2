"""Which mic audio is the user talking to the avatar: the talk mode, the talk button, and who may cut the avatar."""

from __future__ import annotations

from .settings import BargeIn, TalkMode

# The release message can overtake the last words: they may still sit in the WebRTC jitter buffer (up to about
# 200 ms), so audio this long after the release still belongs to the turn.
RELEASE_TAIL_S = 0.25


class TalkGate:
    """Hands-free: all audio counts. Push-to-talk: audio counts while the button is held, and a short tail after."""

    def __init__(self, mode: TalkMode) -> None:
        self.mode = mode
        self.pressed = False
        self._released_at: float | None = None

    def set_mode(self, mode: TalkMode) -> None:
        self.mode = mode
        self.pressed = False
        self._released_at = None

    def press(self) -> None:
        self.pressed = True
        self._released_at = None

    def release(self, now: float) -> None:
        if self.pressed:
            self.pressed = False
            self._released_at = now

    def admits(self, now: float) -> bool:
        """Whether audio arriving at ``now`` (session clock) is meant for the avatar."""
        if self.mode is TalkMode.HANDS_FREE or self.pressed:
            return True
        return self._released_at is not None and now - self._released_at < RELEASE_TAIL_S


def may_barge_in(policy: BargeIn, mode: TalkMode) -> bool:
    """Whether speech may cut the avatar: always, or only speech the user sent by holding the talk button."""
    return policy is BargeIn.ALWAYS or mode is TalkMode.PUSH
