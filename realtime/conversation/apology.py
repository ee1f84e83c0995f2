"""What the avatar says when its LLM cannot answer: short, in the role's language, the reason goes to the page."""

from __future__ import annotations

APOLOGIES = {
    "en": "Sorry, I can't answer that right now. Please try again in a moment.",
    "zh": "抱歉，我现在无法回答，请稍后再试。",
}
FALLBACK_LANGUAGE = "en"


def apology(language: str) -> str:
    """The apology for a role's language tag ("zh", "zh-CN", "en-US"); English for a language without one."""
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return APOLOGIES.get(primary, APOLOGIES[FALLBACK_LANGUAGE])
