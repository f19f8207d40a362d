"""The language of a ticket's text, read offline by py3langid (a Naive Bayes model over byte n-grams
that ships inside the package: no download, no network, the same answer for the same text), and the
round's language decided from it with `core.languages.decide_language`.

The model (about 4 MB) is loaded on first use, once per process, and shared: a detector is safe to
call from several threads (each call only reads the model).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from core.domain import Ticket
from core.languages import LanguageDecision, LanguageGuess, decide_language, is_language_code
from core.ticket_text import question_comment
from integrations.language_config import LanguageSettings

_NOT_WORDS = re.compile(r"https?://\S+|\S+@\S+|[\d_]+")
_LETTER = re.compile(r"[^\W\d_]")


class UnknownLanguages(ValueError):
    """``[languages] detect`` names a language the detector does not know."""


class TextLanguageDetector:
    """The likeliest language of a text, among ``languages`` (empty: every language py3langid knows)."""

    def __init__(self, languages: Sequence[str] = ()) -> None:
        self.languages = tuple(languages)
        self._lock = threading.Lock()
        self._identifier: Any = None

    def _model(self) -> Any:
        with self._lock:
            if self._identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                unknown = sorted(set(self.languages) - set(identifier.labels))
                if unknown:
                    raise UnknownLanguages(
                        f"[languages] detect: the detector does not know {', '.join(unknown)} "
                        f"(it knows {', '.join(sorted(c for c in identifier.labels if is_language_code(c)))})"
                    )
                if self.languages:
                    identifier.set_languages(list(self.languages))
                self._identifier = identifier
            return self._identifier

    def check(self) -> None:
        """Loads the model now; raises UnknownLanguages for a language it does not know."""
        self._model()

    def guess(self, text: str) -> LanguageGuess | None:
        """The likeliest language and its probability; None when the text has no letters or the
        likeliest is no ISO 639-1 language (the model also knows some without a two-letter code)."""
        if not letter_count(text):
            return None
        language, probability = self._model().classify(text)
        if not is_language_code(language):
            return None
        return LanguageGuess(language, float(probability))


def letter_count(text: str) -> int:
    return len(_LETTER.findall(text))


def language_text(ticket: Ticket) -> str:
    """What a ticket's language is read from: its subject and the message a round answers, without
    links, addresses and numbers (they belong to no language)."""
    question = question_comment(ticket)
    text = f"{ticket.subject}\n{question.body if question else ''}"
    return _NOT_WORDS.sub(" ", text).strip()


class TicketLanguages:
    """Decides a ticket's language: its text, else the requester's Zendesk locale, else the default."""

    def __init__(self, settings: LanguageSettings, detector: TextLanguageDetector | None = None) -> None:
        self.settings = settings
        self.detector = detector or TextLanguageDetector(settings.detect)

    def of_text(self, text: str, requester_locale: str | None) -> LanguageDecision:
        cleaned = _NOT_WORDS.sub(" ", text)
        return decide_language(
            self.detector.guess(cleaned),
            letter_count(cleaned),
            requester_locale,
            self.settings.default,
            min_letters=self.settings.min_letters,
            min_probability=self.settings.min_probability,
        )

    def of_ticket(self, ticket: Ticket) -> LanguageDecision:
        return self.of_text(language_text(ticket), ticket.requester_locale)
