"""The text a voice is given to read: written forms a TTS engine would mis-read are spelled out for its language."""

from __future__ import annotations

from realtime.text.zh_numbers import read_numbers_zh

# Primary language subtags of the voices whose numbers are spelled out in Chinese.
CHINESE = frozenset({"zh", "cmn", "yue"})


def read_aloud(text: str, primary_language: str) -> str:
    """``text`` as a voice of ``primary_language`` ("zh", "en") should receive it; unchanged for other languages."""
    if primary_language in CHINESE:
        return read_numbers_zh(text)
    return text
