"""finetune's pure parts: HTML to text, cleaning, pairs in the bot's prompt format, dedup, split, config."""

from __future__ import annotations

import pytest

from bot.config import ConfigError
from core.cleaning import clean_comment, cut_quoted, cut_signature
from core.html_text import html_to_text
from core.prompt import AGENT, INSTRUCTION, STOP_SEQUENCES
from finetune.config import TrainConfig, load_finetune_settings
from finetune.dedup import deduplicate, normalize
from finetune.fitting import article_chunks, fit_pair
from finetune.pairs import Conversation, Turn, answer_positions, conversation_examples
from finetune.split import split_tickets


def words(text: str) -> int:
    return len(text.split())


# -- HTML -------------------------------------------------------------------------------------


def test_html_keeps_lists_links_code_and_tables_readable() -> None:
    html = (
        "<h2>Restore  files</h2><p>Open the <a href='https://help.example/restore'>restore page</a> and:</p>"
        "<ol><li>Pick a <strong>device</strong></li>"
        "<li>Choose files<ul><li>one</li><li>two</li></ul></li></ol>"
        "<pre><code>acme-backup restore --all\n  --to /tmp</code></pre>"
        "<p>Run <code>acme-backup login</code> &amp; mail <a href='mailto:help@acme.example'>us</a>.</p>"
        "<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>$5</td></tr></table>"
        "<script>alert(1)</script><img src='x.png' alt='Screenshot'>"
    )
    assert html_to_text(html) == (
        "Restore files\n\n"
        "Open the restore page (https://help.example/restore) and:\n\n"
        "1. Pick a device\n2. Choose files\n  - one\n  - two\n\n"
        "acme-backup restore --all\n  --to /tmp\n\n"
        "Run `acme-backup login` & mail us (help@acme.example).\n\n"
        "Plan | Price\nBasic | $5\n\n"
        "[image: Screenshot]"
    )


def test_a_link_whose_text_is_its_address_is_not_doubled() -> None:
    assert html_to_text("<p><a href='https://x.example'>https://x.example</a></p>") == "https://x.example"


# -- cleaning ---------------------------------------------------------------------------------


def test_quoted_mail_is_cut_in_several_languages_and_formats() -> None:
    new = "It works now, thanks!"
    for quote in (
        "On Mon, 6 Jan 2025 at 09:00, Olena <support@acme.example> wrote:\n> Hi Tom,\n> try this",
        "Am 06.01.2025 um 09:00 schrieb Olena <support@acme.example>:\n> Hallo",
        "Le lun. 6 janv. 2025 à 09:00, Olena a écrit :\n> Bonjour",
        "From: Olena Kovalenko\nSent: Monday, 6 January 2025 09:00\nTo: Tom\nSubject: Re: backup\n\nHi Tom",
        "-----Original Message-----\nFrom: support",
        "> only quoted lines",
    ):
        assert cut_quoted(f"{new}\n\n{quote}") == new


def test_signatures_are_cut_but_short_messages_and_sentences_stay() -> None:
    assert (
        cut_signature("The backup is stuck.\n\nBest regards,\nMaria Schmidt\nSchmidt GmbH")
        == "The backup is stuck."
    )
    assert cut_signature("The backup is stuck.\n-- \nMaria\n+49 30 1234567") == "The backup is stuck."
    assert cut_signature("It is stuck.\n\nSent from my iPhone") == "It is stuck."
    assert cut_signature("Thanks!") == "Thanks!"  # nothing would be left
    assert (
        cut_signature("Thanks, that solved it! The backup ran.") == "Thanks, that solved it! The backup ran."
    )


def test_clean_comment_converts_html_bodies() -> None:
    html = "<p>Hi,</p><p>my backup fails.</p><p>Regards,<br>Tom</p>"
    assert clean_comment(html) == "Hi,\n\nmy backup fails."


# -- pairs ------------------------------------------------------------------------------------


def conversation(*turns: tuple[str, str]) -> Conversation:
    return Conversation(7, "Backup stuck", tuple(Turn(role, text) for role, text in turns))  # type: ignore[arg-type]


def test_first_answer_pairs_use_the_bots_prompt_format() -> None:
    conv = conversation(
        ("customer", "My backup is stuck."),
        ("customer", "Still stuck!"),
        ("agent", "Close Outlook."),
        ("customer", "Done, works."),
        ("agent", "Great!"),
    )
    [example] = conversation_examples(conv, "first", words, 500, "Acme Cloud Backup")
    assert example.prompt == "\n\n".join(
        [
            INSTRUCTION.format(product="Acme Cloud Backup"),
            "Subject: Backup stuck",
            "Customer: My backup is stuck.",
            "Customer: Still stuck!",
            AGENT,
        ]
    )
    assert example.completion == " Close Outlook."
    assert not any(stop in example.completion for stop in STOP_SEQUENCES)
    assert example.question == "Backup stuck\nMy backup is stuck.\nStill stuck!"


def test_multi_turn_gives_one_example_per_answered_customer_message() -> None:
    conv = conversation(
        ("agent", "Outbound: we noticed failures."),
        ("customer", "Why?"),
        ("agent", "A locked file."),
        ("agent", "Also: update the app."),
        ("customer", "Done."),
        ("agent", "Great!"),
    )
    assert answer_positions(conv.turns, "first") == [2]
    examples = conversation_examples(conv, "multi_turn", words, 500, "X")
    assert [e.completion for e in examples] == [" A locked file.", " Great!"]
    assert examples[1].prompt.endswith("Customer: Done.\n\nAgent:")
    assert "Agent: Also: update the app." in examples[1].prompt


def test_unanswered_conversations_give_no_example() -> None:
    conv = conversation(("customer", "Help?"), ("customer", "Never mind, found it."))
    assert conversation_examples(conv, "first", words, 500, "X") == []


def test_fit_pair_rebuilds_a_long_prompt_keeping_the_newest_customer_message() -> None:
    context = [{"role": "customer", "text": "old " * 300}, {"role": "agent", "text": "reply " * 50},
               {"role": "customer", "text": "newest question"}]  # fmt: skip
    row = {"prompt": "x " * 1000, "completion": " the answer", "subject": "S", "context": context}
    fitted = fit_pair(row, words, 120, "Acme")
    assert fitted is not None and words(fitted["prompt"] + fitted["completion"]) + 1 <= 120
    assert "Customer: newest question" in fitted["prompt"] and "old old" not in fitted["prompt"]
    assert fit_pair({**row, "completion": " a" * 200}, words, 120, "Acme") is None


def test_articles_are_chunked_to_fit() -> None:
    article = {"title": "Title", "text": "\n\n".join(f"paragraph {i} " + "word " * 20 for i in range(10))}
    chunks = article_chunks(article, words, 50)
    assert all(words(chunk) <= 49 for chunk in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(f"Title {article['text']}".split())


# -- dedup and split --------------------------------------------------------------------------


def test_normalize_treats_placeholders_case_and_punctuation_alike() -> None:
    assert normalize("Hi <NAME>, my Backup is STUCK!!") == normalize("hi <EMAIL> my backup is stuck")


def test_dedup_removes_exact_and_near_duplicates_keeping_the_first() -> None:
    base = "my nightly backup has been stuck at 99 percent since yesterday evening what can i do about it"
    texts = [
        base,
        "Other question: how do I cancel my subscription at the end of the month?",
        base.upper() + "!",  # exact after normalisation
        base.replace("what can i do", "what should i do"),  # near
        "Completely different: the mobile app crashes when scanning a barcode on Android 14.",
    ]
    result = deduplicate(texts, threshold=0.6)
    assert result.kept == [0, 1, 4]
    assert result.exact == {2: 0} and result.near == {3: 0}
    assert deduplicate(texts, threshold=1.0).kept == [0, 1, 3, 4]  # 1.0: exact only


def test_split_is_by_ticket_deterministic_and_never_empty() -> None:
    ids = range(1000, 1100)
    split = split_tickets(ids, 0.1, seed=42)
    assert len(split.eval) == 10 and len(split.train) == 90 and not split.train & split.eval
    assert split == split_tickets(reversed(ids), 0.1, seed=42)
    assert split != split_tickets(ids, 0.1, seed=43)
    assert len(split_tickets([1, 2], 0.01, seed=1).eval) == 1


# -- config -----------------------------------------------------------------------------------


def test_defaults_are_the_qlora_papers() -> None:
    config = TrainConfig()
    assert (config.quantization, config.double_quant, config.compute_dtype) == ("nf4", True, "auto")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (64, 16, 0.1)
    assert (config.learning_rate, config.lr_scheduler_type, config.warmup_ratio) == (
        2e-4,
        "constant_with_warmup",
        0.03,
    )
    assert (config.optim, config.max_grad_norm, config.gradient_checkpointing) == (
        "paged_adamw_32bit",
        0.3,
        True,
    )
    assert config.target_modules == []  # found per model: every linear layer but the head


def test_per_model_tables_override_the_shared_defaults() -> None:
    settings = load_finetune_settings(
        {"train": {"lora_r": 16, "learning_rate": 1e-4}, "prepare": {"pairs": "multi_turn"}},
        {"gptj-6b-ft": {"lora_r": 8, "target_modules": ["q_proj", "v_proj"], "eval": {"max_generate": 5}}},
    )
    gptj, gptj_eval = settings.for_model("gptj-6b-ft")
    llama, _ = settings.for_model("llama2-7b-ft")
    assert (gptj.lora_r, gptj.learning_rate, gptj.target_modules, gptj_eval.max_generate) == (
        8, 1e-4, ["q_proj", "v_proj"], 5,
    )  # fmt: skip
    assert (llama.lora_r, llama.learning_rate) == (16, 1e-4)
    assert settings.prepare.pairs == "multi_turn"


def test_every_config_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_finetune_settings(
            {"train": {"lora_r": "big", "learnin_rate": 1}, "prepare": {"pairs": "all"}, "worksdir": "x"},
            {"m": {"lora_dropout": 1.5}},
        )
    text = str(caught.value)
    for expected in (
        "finetune.train.lora_r: expected an integer",
        "finetune.train.learnin_rate: unknown setting",
        "finetune.prepare.pairs: must be one of first, multi_turn",
        "finetune.worksdir: unknown setting",
        "models[m].finetune.lora_dropout: must be in [0, 1)",
    ):
        assert expected in text


def test_a_tail_that_asks_a_question_is_the_message_not_a_signature():
    # After a sign-off word and after "--" alike: the drafts must answer the question.
    assert cut_signature("Hi,\nThank you\nI still can't log in, what now?") == (
        "Hi,\nThank you\nI still can't log in, what now?"
    )
    assert (
        cut_signature("Hello,\n--\nLog: error 5\nWhat do I do?") == "Hello,\n--\nLog: error 5\nWhat do I do?"
    )
    assert cut_signature("Restore fails.\n\nThanks,\nAiko Tanaka\nAcme GmbH") == "Restore fails."
