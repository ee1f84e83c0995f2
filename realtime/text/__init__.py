"""Text handling between the LLM and TTS: cutting streamed answers into speakable chunks."""

from realtime.text.splitter import SentenceSplitter, split_text

__all__ = ["SentenceSplitter", "split_text"]
