"""OpenAI-compatible chat completions, streamed: OpenAI, DashScope/Qwen compatible mode, Ollama /v1, vLLM."""

from __future__ import annotations

from collections.abc import AsyncIterator

from realtime.engines.llm.base import LLMError, LLMErrorCode
from realtime.engines.llm.http import HTTPStreamingLLM, SSEEvent, parse_json

_DONE = "[DONE]"


class OpenAICompatibleLLM(HTTPStreamingLLM):
    """POST {base_url}/chat/completions with ``stream: true``; the answer is ``choices[0].delta.content``.

    The role's system prompt and the trimmed history go in ``messages`` on
    every request: these servers keep no conversation state.
    """

    def build_request(self, messages: list[dict]) -> tuple[str, dict]:
        body = {
            "model": self.settings.model,
            "messages": self.request_messages(messages),
            "stream": True,
            "temperature": self.settings.temperature,
            "user": self.settings.user,
        }
        return "/chat/completions", body

    async def read_deltas(self, events: AsyncIterator[SSEEvent]) -> AsyncIterator[str]:
        finished = False
        async for event in events:
            if event.data.strip() == _DONE:
                return
            payload = parse_json(event.data)
            if "error" in payload:
                error = payload["error"]
                message = error.get("message", "") if isinstance(error, dict) else str(error)
                raise LLMError(LLMErrorCode.SERVER_ERROR, f"error in stream: {message}")
            for choice in payload.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield content
                finished = finished or bool(choice.get("finish_reason"))
        # Some servers close after the final chunk without "[DONE]"; a close before any finish_reason is a cut.
        if not finished:
            raise LLMError(LLMErrorCode.BROKEN_STREAM, "stream ended before the answer was complete")
