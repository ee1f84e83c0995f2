"""What the avatar says when it cannot answer (the LLM failed) or did not hear (the speech recogniser failed):
short, in the role's language; the reason goes to the page and the log."""

from __future__ import annotations

APOLOGIES = {
    "en": "Sorry, I can't answer that right now. Please try again in a moment.",
    "zh": "抱歉，我现在无法回答，请稍后再试。",
}
UNHEARD = {
    "en": "Sorry, I didn't catch that. Could you say it again?",
    "zh": "抱歉，我没有听清，请再说一遍。",
}
FALLBACK_LANGUAGE = "en"


def _in_language(table: dict[str, str], language: str) -> str:
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return table.get(primary, table[FALLBACK_LANGUAGE])


def apology(language: str) -> str:
    """The apology for a role's language tag ("zh", "zh-CN", "en-US"); English for a language without one."""
    return _in_language(APOLOGIES, language)


def unheard_apology(language: str) -> str:
    """What the avatar says when a turn's words were lost (recognition failed or timed out)."""
    return _in_language(UNHEARD, language)
