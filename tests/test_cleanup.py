"""Draft clean-up: pure functions on token ids and text."""

from __future__ import annotations

from models.cleanup import (
    clean_completion,
    completion_ids,
    cut_at_stop,
    find_stop,
    trim_unfinished_sentence,
)

EOS, PAD = 2, 0


def test_completion_ids_drop_prompt_and_stop_at_end_token() -> None:
    # Left padding is part of the prompt length; the row finished early and was padded.
    sequence = [PAD, PAD, 5, 6, 7, 10, 11, EOS, PAD, PAD]
    assert completion_ids(sequence, 5, {EOS, PAD}) == [10, 11]
    assert completion_ids([5, 6, 10, 11], 2, {EOS, PAD}) == [10, 11]  # hit the token limit
    assert completion_ids([5, 6, EOS], 2, {EOS}) == []


def test_cut_at_the_earliest_stop_string() -> None:
    text = "Sure, I can help.\nCustomer: thanks\nAgent: bye"
    assert find_stop(text, ["\nAgent:", "\nCustomer:"]) == text.index("\nCustomer:")
    assert cut_at_stop(text, ["\nAgent:", "\nCustomer:"]) == "Sure, I can help."
    assert cut_at_stop(text, []) == text
    assert cut_at_stop(text, [""]) == text  # an empty stop string is ignored


def test_trim_unfinished_sentence() -> None:
    assert trim_unfinished_sentence("Thanks for writing. I have refunded the") == "Thanks for writing."
    assert trim_unfinished_sentence("Is it fixed? Great! Next we") == "Is it fixed? Great!"
    assert trim_unfinished_sentence('He said "done." Then') == 'He said "done."'
    assert trim_unfinished_sentence("Steps:\n1) open Settings\n2) click") == "Steps:\n1) open Settings"
    assert trim_unfinished_sentence("All done.") == "All done."
    # Not sentence ends: decimals, domains.
    assert trim_unfinished_sentence("Version 3.5 of example.com is") == "Version 3.5 of example.com is"
    # No sentence end at all: keep the text rather than return nothing.
    assert trim_unfinished_sentence("no full stop anywhere") == "no full stop anywhere"
    assert trim_unfinished_sentence("   ") == ""


def test_clean_completion() -> None:
    raw = "  Hi Maria, the reset link is on its way. It should arrive\nCustomer: ok"
    # A stop string ended the reply: nothing was cut off, so the last sentence stays.
    assert clean_completion(raw, ["\nCustomer:"], truncated=True) == (
        "Hi Maria, the reset link is on its way. It should arrive"
    )
    # Cut by the token limit: the unfinished sentence goes.
    assert clean_completion(" Hi Maria. The link is on its", truncated=True) == "Hi Maria."
    # Ended on its own (eos): a sign-off without a full stop is complete.
    assert clean_completion(" Done.\nBest regards,\nAnna ", truncated=False) == "Done.\nBest regards,\nAnna"
    assert clean_completion("\nCustomer: hi", ["\nCustomer:"]) == ""


def test_replacement_characters_from_split_bytes_are_dropped():
    assert clean_completion("Hello \ufffdworld.\ufffd") == "Hello world."
