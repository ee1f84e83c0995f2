"""Voice conversation (DESIGN.md §3): the user's mic in, turns taken and answered by the role's LLM, barge-in."""

from .conversation import Conversation, ConversationHost, TurnRows
from .settings import BargeIn, ConversationSettings, TalkMode

__all__ = ["BargeIn", "Conversation", "ConversationHost", "ConversationSettings", "TalkMode", "TurnRows"]
