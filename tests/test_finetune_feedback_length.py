"""Feedback rows fit the training sequence: `finetune feedback` shortens a KTO or DPO row's prompt the
way the bot cuts prompts (the completion kept whole) to `[finetune.train] max_length`, counted by
the base model's tokenizer, so DPO trains on them; and `finetune train` refuses, in one line naming
the setting, a set in which no row fits, for every method, before TRL is called (TRL drops every
fully truncated row and then fails with "num_samples=0")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from draftdesk.cli import main
from finetune.sample import SAMPLE_EMAIL, SAMPLE_PRODUCT, SAMPLE_TOKEN, sample_zendesk
from integrations.zendesk import ZendeskGateway
from tests.test_finetune_feedback import BAD, seed_store

MAX_LENGTH = 256
TINY_TRAIN = f"""
[finetune.train]
max_length = {MAX_LENGTH}
max_steps = 2
lora_r = 8
lora_dropout = 0.0
learning_rate = 5e-3
warmup_ratio = 0.0
per_device_train_batch_size = 4
logging_steps = 1
"""


def tiny_model(base: Path) -> str:
    return f"""
[[models]]
name = "tiny"
base_model = "{base}"
"""


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for name in ("train.jsonl", "eval.jsonl") for line in (folder / name).open()]


def test_a_feedback_set_with_long_prompts_trains_with_dpo_at_max_length_256(
    demo_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer

    base = demo_models["llama_base"]
    config = tmp_path / "config.toml"
    with sample_zendesk() as zd:
        seed_store(tmp_path / "store.json", ZendeskGateway.from_settings(zd.url, SAMPLE_EMAIL, SAMPLE_TOKEN))
        config.write_text(
            f"""
[storage]
path = "./store.json"

[zendesk]
url = "{zd.url}"

[worker]
product_name = "{SAMPLE_PRODUCT}"

[finetune.prepare]
eval_fraction = 0.3
{TINY_TRAIN}
{tiny_model(base)}
"""
        )
        monkeypatch.setenv("ZENDESK_EMAIL", SAMPLE_EMAIL)
        monkeypatch.setenv("ZENDESK_API_TOKEN", SAMPLE_TOKEN)
        out = tmp_path / "feedback"
        code = main(
            ["finetune", "feedback", "--config", str(config), "--out", str(out), "--tokenizer", str(base)]
        )
        assert code == 0, capsys.readouterr().err
    capsys.readouterr()

    tokenizer = AutoTokenizer.from_pretrained(str(base))

    def tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    # The sample's prompts run to 366-785 tokens; all 13 KTO rows fit once shortened, and 4 of the 5
    # DPO pairs: one sent reply (107 tokens) leaves no room for the instruction and the question.
    dpo, kto = rows(out / "dpo"), rows(out / "kto")
    assert len(dpo) == 4 and len(kto) == 13
    for row in dpo:
        assert tokens(row["prompt"] + row["chosen"]) + 1 <= MAX_LENGTH
        assert tokens(row["prompt"] + row["rejected"]) + 1 <= MAX_LENGTH
        assert row["prompt"].startswith("You are a customer support agent for Acme Cloud Backup")
        assert row["prompt"].endswith("\n\nAgent:") and "\n\nCustomer: " in row["prompt"]
        assert row["rejected"] == " " + BAD  # the completions whole
    assert all(tokens(r["prompt"] + r["completion"]) + 1 <= MAX_LENGTH for r in kto)
    card = json.loads((out / "card.json").read_text())
    assert card["settings"]["max_length"] == MAX_LENGTH
    filters = card["filters"]
    assert filters["dpo_prompts_shortened"] == 4 and filters["dpo_too_long"] == 1
    assert filters["kto_prompts_shortened"] == 13 and "kto_too_long" not in filters
    assert "fitted to max_length 256 tokens (tokenizer " in (out / "card.md").read_text()

    code = main(
        [
            "finetune", "train", "--config", str(config), "--model", "tiny", "--method", "dpo",
            "--dataset", str(out / "dpo"), "--output-dir", str(tmp_path / "adapters"),
        ]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    [version] = [p for p in (tmp_path / "adapters" / "tiny").iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["metrics"]["global_step"] == 2 and manifest["dataset"]["left_out_too_long"] == 0


LONG_PROMPT = (
    "You are a customer support agent for Acme Cloud Backup. Write the agent's next reply.\n\n"
    "Subject: Backup stuck\n\nCustomer: "
    + "My backup is stuck at 99% and the log says waiting for a lock. "
    * 8
) + "\n\nAgent:"


@pytest.mark.parametrize("method", ["sft", "kto", "dpo"])
def test_a_set_in_which_no_row_fits_is_refused_in_one_line_naming_the_setting(
    method: str, demo_models: dict, dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    max_length = 32 if method == "sft" else MAX_LENGTH  # SFT prompts are rebuilt: only a tiny budget fails
    config = tmp_path / "config.toml"
    config.write_text(
        TINY_TRAIN.replace(f"max_length = {MAX_LENGTH}", f"max_length = {max_length}")
        + "include_articles = false\n"
        + tiny_model(demo_models["llama_base"])
    )
    dataset = dataset_dir
    if method != "sft":
        dataset = tmp_path / method
        dataset.mkdir()
        if method == "dpo":
            lines = [{"prompt": LONG_PROMPT, "chosen": " Close Outlook.", "rejected": " No."}] * 3
        else:
            lines = [
                {"prompt": LONG_PROMPT, "completion": " Close Outlook.", "label": i % 2 == 0}
                for i in range(4)
            ]
        (dataset / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))

    code = main(
        [
            "finetune", "train", "--config", str(config), "--model", "tiny", "--method", method,
            "--dataset", str(dataset), "--output-dir", str(tmp_path / "adapters"),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    [refusal] = [line for line in err.splitlines() if "max_length" in line]
    assert refusal.startswith("draftdesk finetune train: ") and "no training row fits" in refusal
    assert f"[finetune.train] max_length = {max_length}" in refusal and "raise" in refusal
    assert not (tmp_path / "adapters" / "tiny").exists()  # refused before any run was started


def test_a_grounded_prompt_is_shortened_with_its_passages_and_the_completion_whole() -> None:
    from datetime import UTC, datetime

    from core.domain import Comment, Ticket
    from core.prompt import SOURCES_HEADING, build_prompt
    from finetune.fitting import fit_preference_prompt, shortened_prompt

    def words(text: str) -> int:
        return len(text.split())

    at = datetime(2026, 1, 5, tzinfo=UTC)
    comments = (
        Comment(1, 7, "My backup is stuck at 99%. " * 20 + "Thanks, Aiko Tanaka", True, at, True),
        Comment(2, 8, "Close Outlook, please. Kind regards, Sam Carter", True, at, False, "agent"),
        Comment(3, 7, "Still stuck, and Sam said it would work.", True, at, True),
        Comment(4, 8, "A later reply, not in the prompt.", True, at, False, "agent"),
    )
    ticket = Ticket(
        3, "Backup stuck", "open", 7, "Aiko Tanaka", at, "", comments, author_names=("Aiko Tanaka",)
    )
    passages = ["Backups stuck at 99%: close the program that holds the file."]
    stood = Ticket(**{**ticket.__dict__, "comments": comments[:3]})
    recorded = build_prompt(stood, words, 1000, SAMPLE_PRODUCT, passages)
    completion = " Turn on Volume Shadow Copy under Settings."

    def rebuild(room: int) -> str | None:
        return shortened_prompt(ticket, 3, recorded, ["Sam Carter"], words, room, SAMPLE_PRODUCT)

    fitted = fit_preference_prompt(recorded, [completion], words, 90, rebuild)
    assert fitted is not None and words(fitted + completion) + 1 <= 90 < words(recorded + completion)
    assert f"{SOURCES_HEADING}\n- {passages[0]}" in fitted  # the passages stay, as in the bot's prompt
    assert fitted.endswith("Customer: Still stuck, and <NAME> said it would work.\n\nAgent:")
    assert "99%. My backup" not in fitted and "later reply" not in fitted
    assert fit_preference_prompt(recorded, [completion], words, 40, rebuild) is None  # no room left
    assert shortened_prompt(ticket, 99, recorded, [], words, 80, SAMPLE_PRODUCT) is None  # message gone
