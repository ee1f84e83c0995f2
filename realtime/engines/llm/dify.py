"""Dify's chat API, streamed. Dify keeps the conversation itself; this engine keeps its id for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator

from realtime.engines.llm.base import LLMError, LLMErrorCode, LLMSettings
from realtime.engines.llm.http import HTTPStreamingLLM, SSEEvent, error_for_status, parse_json

# "agent_message" carries the answer in agent apps, as "message" does in chat apps.
_ANSWER_EVENTS = frozenset({"message", "agent_message"})


class DifyLLM(HTTPStreamingLLM):
    """POST {base_url}/chat-messages with ``response_mode: streaming``; SSE events carry the answer.

    Only the user's newest message is sent: the Dify app holds the system
    prompt and the history under ``conversation_id``, which the first
    answer returns and every later request of this session sends back.
    """

    def __init__(self, settings: LLMSettings) -> None:
        super().__init__(settings)
        self.conversation_id = ""

    def build_request(self, messages: list[dict]) -> tuple[str, dict]:
        query = next((message["content"] for message in reversed(messages) if message["role"] == "user"), "")
        body = {
            "inputs": {},
            "query": query,
            "response_mode": "streaming",
            "conversation_id": self.conversation_id,
            "user": self.settings.user,
        }
        return "/chat-messages", body

    async def read_deltas(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[str]:
        async for event in events:
            payload = parse_json(event.data)
            kind = payload.get("event", event.event)
            if payload.get("conversation_id"):
                self.conversation_id = payload["conversation_id"]
            if kind in _ANSWER_EVENTS:
                if payload.get("answer"):
                    yield payload["answer"]
            elif kind == "message_end":
                return
            elif kind == "error":
                raise error_for_status(int(payload.get("status") or 500), str(payload.get("message", "")))
            # Other events (ping, workflow and node progress, files, tts) carry no answer text.
        raise LLMError(LLMErrorCode.BROKEN_STREAM, "stream ended before message_end")
