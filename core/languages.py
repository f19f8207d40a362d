"""A ticket's language: ISO 639-1 codes, Zendesk locales read as languages, and the one rule that
decides a round's language from a detector's guess, the requester's locale and the default. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The names the thread's notices give a language (Slack's own texts stay English); others show the code.
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hu": "Hungarian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nb": "Norwegian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}
_CODE = re.compile(r"[a-z]{2}")
_LOCALE = re.compile(r"([A-Za-z]{2})(?:[-_][A-Za-z0-9]+)*")


def is_language_code(value: str) -> bool:
    """An ISO 639-1 code as draftdesk writes them: two lower-case letters ("de", not "de-DE")."""
    return bool(_CODE.fullmatch(value))


def language_name(code: str) -> str:
    """ "German" for "de"; the code itself for a language without a name here."""
    return LANGUAGE_NAMES.get(code, code)


def locale_language(locale: str | None) -> str | None:
    """The language of a Zendesk locale ("en-US" → "en", "pt-br" → "pt", "de" → "de"); None when
    it names none."""
    match = _LOCALE.fullmatch((locale or "").strip())
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class LanguageGuess:
    """What a detector read in a text: the likeliest language and its probability (0-1)."""

    language: str
    probability: float


@dataclass(frozen=True)
class LanguageDecision:
    """A round's language and what decided it: "text", "locale" or "default"."""

    language: str
    decided_by: str


def decide_language(
    guess: LanguageGuess | None,
    letters: int,
    requester_locale: str | None,
    default: str,
    *,
    min_letters: int,
    min_probability: float,
) -> LanguageDecision:
    """The text decides when it is long enough (``letters``) and the detector sure enough; else the
    requester's Zendesk locale breaks the tie; else ``default``.

    A short text ("Danke!", "Hi, any update?") says too little for any detector, and a requester's
    locale is what Zendesk itself writes to them in; a long text wins over the locale, since Zendesk
    gives every user the account's locale unless someone changed it.
    """
    if guess is not None and letters >= min_letters and guess.probability >= min_probability:
        return LanguageDecision(guess.language, "text")
    from_locale = locale_language(requester_locale)
    if from_locale is not None:
        return LanguageDecision(from_locale, "locale")
    return LanguageDecision(default, "default")
