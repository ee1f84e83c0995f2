"""The LLM interface: one async generator of text deltas per answer, and the errors it may raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum

from realtime.net.outbound import OutboundPolicy


@dataclass(frozen=True, kw_only=True)
class LLMSettings:
    """A Role's LLM settings as the engines see them (no Django): filled by the session factory.

    ``timeout_s`` bounds the wait for the first text delta (from sending the
    request) and every later gap between reads. ``user`` identifies the
    end user to servers that want one (Dify requires it; a session id fits).
    ``outbound`` is checked on every connection: the default refuses every
    internal address. The time and history limits have no defaults: the
    session factory fills them from the LLM_* settings.
    """

    model: str = ""
    base_url: str = ""
    api_key: str = ""
    temperature: float = 0.7
    system_prompt: str = ""
    timeout_s: float
    history_chars: int
    user: str = "livehuman"
    idle_timeout_s: float  # longest gap between two text deltas once the answer has started
    answer_deadline_s: float  # the whole answer, after its first delta
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)  # what base_url may reach (session factory)


class LLMErrorCode(StrEnum):
    UNREACHABLE = "unreachable"  # no connection to the server
    UNAUTHORIZED = "unauthorized"  # 401/403: wrong or missing API key
    TIMEOUT = "timeout"  # no first token, or a stall, within timeout_s
    SERVER_ERROR = "server_error"  # 5xx, or an error reported inside the stream
    REJECTED = "rejected"  # another 4xx: unknown model, bad base URL (404), rate limit (429)
    BROKEN_STREAM = "broken_stream"  # connection cut mid-stream, or a stream that is not the expected SSE
    REFUSED = "refused"  # the outbound policy refused the address base_url (or a redirect) resolved to


class LLMError(RuntimeError):
    """An answer could not be produced; ``code`` lets the session pick an apology and show the reason."""

    def __init__(self, code: LLMErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def history_window(messages: list[dict], *, system_prompt: str, budget_chars: int) -> list[dict]:
    """The messages to send: the system prompt, then the most recent turns whose text fits ``budget_chars``.

    ``messages`` is the conversation, oldest first, as ``{"role", "content"}``
    dicts. System messages in it are always kept (after ``system_prompt``).
    The newest turn is kept even when it alone exceeds the budget, and the
    window never starts with an assistant turn: chat APIs expect the user first.
    """
    pinned = [{"role": "system", "content": system_prompt}] if system_prompt else []
    pinned += [message for message in messages if message["role"] == "system"]
    turns = [message for message in messages if message["role"] != "system"]
    kept: list[dict] = []
    used = 0
    for message in reversed(turns):
        used += len(message["content"])
        if kept and used > budget_chars:
            break
        kept.append(message)
    kept.reverse()
    while len(kept) > 1 and kept[0]["role"] == "assistant":
        kept.pop(0)
    return pinned + kept


class LLMEngine(ABC):
    """Answers a conversation as a stream of text deltas. One instance per session; cheap to create."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings

    @abstractmethod
    def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        """Yield the answer to ``messages`` (the conversation, oldest first) as non-empty text deltas.

        Raises LLMError. Cancelling the consuming task (barge-in) or closing the
        generator (``contextlib.aclosing``) closes the request at once; a bare
        ``break`` leaves the connection open until the generator is collected.
        """

    def request_messages(self, messages: list[dict]) -> list[dict]:
        """The conversation trimmed to the history budget, behind this role's system prompt."""
        return history_window(
            messages, system_prompt=self.settings.system_prompt, budget_chars=self.settings.history_chars
        )

    async def aclose(self) -> None:
        """Release per-session resources (HTTP connections)."""
