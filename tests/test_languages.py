"""A ticket's language (issue 28 item 1): the rule (core.languages), the detector (py3langid through
integrations.language_detector) and the `[languages]` settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config import parse_settings
from core.config import ConfigError
from core.domain import Comment, Ticket
from core.languages import LanguageGuess, decide_language, locale_language
from integrations.language_config import LanguageSettings
from integrations.language_detector import TextLanguageDetector, TicketLanguages, UnknownLanguages

T0 = datetime(2026, 3, 1, tzinfo=UTC)
GERMAN = "Hallo, ich kann mich seit gestern nicht mehr einloggen, das Passwort wird nicht akzeptiert."
ENGLISH = "Hi, I cannot log in since yesterday: the password reset e-mail never arrives."

RULE = {"min_letters": 20, "min_probability": 0.8}


def ticket(subject: str, body: str, locale: str = "") -> Ticket:
    comment = Comment(10, 100, body, True, T0, True)
    return Ticket(1, subject, "new", 100, "Jonas Weber", T0, "u", (comment,), requester_locale=locale)


@pytest.mark.parametrize(
    ("locale", "language"),
    [("en-US", "en"), ("de", "de"), ("pt-br", "pt"), ("zh_TW", "zh"), ("", None), (None, None), ("x", None)],
)
def test_a_zendesk_locale_reads_as_its_language(locale, language):
    assert locale_language(locale) == language


def test_the_text_decides_when_long_and_sure_then_the_locale_then_the_default():
    sure = LanguageGuess("de", 0.99)
    assert decide_language(sure, 60, "en-US", "en", **RULE).language == "de"  # the text beats the locale
    assert decide_language(sure, 6, "fr", "en", **RULE).language == "fr"  # too short: the locale decides
    unsure = LanguageGuess("de", 0.5)
    decision = decide_language(unsure, 60, "pt-BR", "en", **RULE)
    assert (decision.language, decision.decided_by) == ("pt", "locale")
    decision = decide_language(None, 0, "", "de", **RULE)
    assert (decision.language, decision.decided_by) == ("de", "default")


def test_the_detector_reads_german_and_english_offline():
    detector = TextLanguageDetector()
    assert detector.guess(GERMAN).language == "de"
    assert detector.guess(ENGLISH).language == "en"
    assert detector.guess(GERMAN).probability > 0.9
    assert detector.guess("1234 !!! 5678") is None  # no letters, nothing to read


def test_a_short_german_text_follows_the_requesters_locale():
    languages = TicketLanguages(LanguageSettings())
    assert languages.of_ticket(ticket("Danke", "Danke!", locale="de")).language == "de"
    assert languages.of_ticket(ticket("Thanks", "Thanks!", locale="en-US")).language == "en"
    decision = languages.of_ticket(ticket("Danke", "Danke!"))
    assert (decision.language, decision.decided_by) == ("en", "default")


def test_a_long_text_wins_over_the_locale_zendesk_gave_everyone():
    decision = TicketLanguages(LanguageSettings()).of_ticket(ticket("Login", GERMAN, locale="en-US"))
    assert (decision.language, decision.decided_by) == ("de", "text")


def test_links_and_addresses_are_no_language():
    body = "https://example.com/hc/de/articles/123 jonas@example.com 0049 30 1234567"
    decision = TicketLanguages(LanguageSettings()).of_text(body, "fr")
    assert (decision.language, decision.decided_by) == ("fr", "locale")


def test_detecting_among_the_teams_languages_reads_short_texts_right():
    everything = TextLanguageDetector()
    two = TextLanguageDetector(["en", "de"])
    assert everything.guess("Passwort vergessen").language != "de"  # a neighbour language wins
    assert two.guess("Passwort vergessen").language == "de"


def test_an_unknown_language_to_detect_is_one_clear_line():
    with pytest.raises(UnknownLanguages, match=r"\[languages\] detect: the detector does not know qq"):
        TextLanguageDetector(["en", "qq"]).check()


def test_the_languages_section_is_checked_with_the_others():
    raw = {
        "slack": {"channel": "C1"},
        "zendesk": {"subdomain": "acme"},
        "languages": {"default": "German", "detect": ["en", "de-DE"], "min_probability": 2},
        "models": [{"name": "m", "base_model": "x", "languages": ["de", "EN"]}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, {}, need_secrets=False)
    problems = caught.value.problems
    assert any(p.startswith("languages.default: expected an ISO 639-1 code") for p in problems), problems
    assert any("detect: expected ISO 639-1 codes" in p and "de-DE" in p for p in problems), problems
    assert any("min_probability: must be between 0 and 1" in p for p in problems), problems
    assert any("languages: expected ISO 639-1 codes" in p and "'EN'" in p for p in problems), problems


def test_languages_default_to_english_and_models_to_every_language():
    raw = {
        "slack": {"channel": "C1"},
        "zendesk": {"subdomain": "acme"},
        "models": [{"name": "m", "base_model": "x"}],
    }
    settings = parse_settings(raw, {}, need_secrets=False)
    assert settings.languages.default == "en"
    assert settings.models[0].writes("de") and settings.models[0].writes("en")


def test_a_model_language_the_detector_never_picks_is_a_problem():
    raw = {
        "slack": {"channel": "C1"},
        "zendesk": {"subdomain": "acme"},
        "languages": {"detect": ["en", "de"]},
        "models": [
            {"name": "a", "base_model": "x", "languages": ["en"]},
            {"name": "b", "base_model": "x", "languages": ["de", "fr"]},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, {}, need_secrets=False)
    assert caught.value.problems == [
        "models[1].languages: 'fr' is not in [languages] detect ['en', 'de']: add it there, or the detector "
        "never picks it"
    ]
