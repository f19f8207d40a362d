"""Filling the placeholders a redacted-data model writes with what the ticket knows."""

import pytest

from core import pii
from core.placeholders import KINDS, PLACEHOLDERS, KnownValues, fill_placeholders, unresolved_placeholders

KNOWN = KnownValues("Maria Schmidt", "maria@example.com", "Grace Hopper")


def test_finetune_writes_the_placeholders_the_bot_fills():
    assert pii.KINDS is KINDS and pii.PLACEHOLDERS is PLACEHOLDERS


@pytest.mark.parametrize(
    ("draft", "filled"),
    [
        ("Hi <NAME>,\nRestart it.", "Hi Maria,\nRestart it."),
        ("Dear Ms <NAME>, thanks.", "Dear Ms Maria, thanks."),
        ("Thanks!\n<NAME>", "Thanks!\nGrace Hopper"),
        ("Best regards,\n<NAME>\n", "Best regards,\nGrace Hopper\n"),
        ("We wrote to <EMAIL> today.", "We wrote to maria@example.com today."),
        ("Ask <NAME> in billing.", "Ask <NAME> in billing."),  # someone else: not guessed
        ("Call <PHONE> or visit <ADDRESS>.", "Call <PHONE> or visit <ADDRESS>."),
    ],
)
def test_what_the_ticket_knows_is_filled_and_nothing_else(draft, filled):
    assert fill_placeholders(draft, KNOWN) == filled


def test_unknown_values_leave_the_placeholders():
    draft = "Hi <NAME>,\nwe wrote to <EMAIL>.\nBest,\n<NAME>"
    assert fill_placeholders(draft, KnownValues()) == draft
    assert unresolved_placeholders(draft) == ["<NAME>", "<EMAIL>"]
    assert unresolved_placeholders(fill_placeholders(draft, KNOWN)) == []
    assert unresolved_placeholders("a <b> tag and <name> in lower case") == []
