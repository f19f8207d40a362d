"""DPO and KTO from rated drafts with TRL, on a tiny 4-bit LLaMA-shaped model on the CPU.

The preference data are built from the bundled sample: the agent's real answer is the good
completion, a curt non-answer the bad one. Training must raise the held-out margin (the model
prefers what the raters preferred on tickets it never saw), write a new adapter version with a
manifest, and never save TRL's frozen reference copy as part of the adapter.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from core.prompt import SOURCES_HEADING
from finetune.preference import (
    PreferenceDataError,
    load_preference_dataset,
    rows_in_prompt_format,
    train_preference,
)
from tests.test_finetune_train import TINY

CURT = [
    " Not our problem. Read the manual.",
    " No idea, sorry. Try again later maybe.",
    " We cannot help with that. Ticket closed.",
    " Please stop writing to us about this.",
    " That is how it works. Nothing to do.",
]
CURT_HELD_OUT = [" Works for me. Closing this.", " Ask someone else, we do not support that."]
CONFIG = replace(TINY, max_steps=12)  # the SFT tests' tiny settings


def pairs(dataset_dir: Path, name: str) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (dataset_dir / name).read_text().splitlines() if line.strip()]
    return [{"prompt": r["prompt"][-900:], "completion": r["completion"][:400]} for r in rows]


def write(folder: Path, train: list[dict], evaluation: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("eval.jsonl", evaluation)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def dpo_rows(rows: list[dict], bad: list[str]) -> list[dict]:
    return [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": bad[i % len(bad)]}
        for i, r in enumerate(rows)
    ]


def kto_rows(rows: list[dict], bad: list[str]) -> list[dict]:
    good = [{"prompt": r["prompt"], "completion": r["completion"], "label": True} for r in rows]
    worse = [
        {"prompt": r["prompt"], "completion": bad[i % len(bad)], "label": False} for i, r in enumerate(rows)
    ]
    return [row for pair in zip(good, worse, strict=True) for row in pair]


def test_dpo_raises_the_held_out_margin_of_chosen_over_rejected(
    demo_models: dict, dataset_dir: Path, tmp_path: Path
) -> None:
    data = write(
        tmp_path / "dpo",
        dpo_rows(pairs(dataset_dir, "train.jsonl"), CURT),
        dpo_rows(pairs(dataset_dir, "eval.jsonl"), CURT_HELD_OUT),
    )
    result = train_preference(
        "dpo", "tiny-llama", str(demo_models["llama_base"]), data, tmp_path / "out", CONFIG
    )

    metrics = result.manifest["metrics"]
    assert metrics["global_step"] == 12
    assert metrics["eval_preference_margin_after"] > metrics["eval_preference_margin_before"] + 1.0
    assert result.manifest["method"] == "dpo" and result.manifest["reference"].startswith("the untuned base")
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (tmp_path / "out" / "tiny-llama" / "LATEST").read_text().strip() == result.adapter_dir.name
    assert result.current  # the model's first version: nothing to compete with

    # The same run again trains nothing (a 7B version is 640 MB): it is the version trained before.
    again = train_preference(
        "dpo", "tiny-llama", str(demo_models["llama_base"]), data, tmp_path / "out", CONFIG
    )
    assert again.already_done and again.adapter_dir == result.adapter_dir and again.current
    versions = [p for p in (tmp_path / "out" / "tiny-llama").iterdir() if (p / "manifest.json").is_file()]
    assert versions == [result.adapter_dir]
    latest = tmp_path / "out" / "tiny-llama" / "LATEST"
    latest.write_text("another-version\n")  # --make-current on a run trained before still makes it current
    made = train_preference(
        "dpo", "tiny-llama", str(demo_models["llama_base"]), data, tmp_path / "out", CONFIG, make_current=True
    )
    assert made.already_done and made.current and latest.read_text().strip() == result.adapter_dir.name


def test_only_rows_in_the_models_prompt_format_are_trained_on(tmp_path: Path) -> None:
    """A feedback set holds the prompts of every rated model, grounded ones among them."""
    plain = {"prompt": "Subject: x\n\nCustomer: stuck\n\nAgent:", "chosen": " Restart.", "rejected": " No."}
    grounded = {**plain, "prompt": f"Intro\n{SOURCES_HEADING}\n- Backups: restart.\n\n" + plain["prompt"]}
    train, evaluation, left_out = rows_in_prompt_format([plain, grounded, plain], [grounded], False, tmp_path)
    assert (train, evaluation, left_out) == ([plain, plain], [], 2)
    train, evaluation, left_out = rows_in_prompt_format([plain, grounded], [grounded], True, tmp_path)
    assert (train, evaluation, left_out) == ([grounded], [grounded], 1)
    with pytest.raises(PreferenceDataError, match=r"every training prompt holds Help Center passages"):
        rows_in_prompt_format([grounded], [], False, tmp_path)
    # A grounded model's own draft whose ticket matched no passage is its own format all the same.
    own = {**plain, "model": "grounded-ft"}
    train, _, left_out = rows_in_prompt_format([own, plain, grounded], [], True, tmp_path, "grounded-ft")
    assert train == [own, grounded] and left_out == 1


def test_kto_continues_an_adapter_against_a_frozen_copy_and_favours_desirable_answers(
    demo_models: dict, dataset_dir: Path, tmp_path: Path
) -> None:
    data = write(
        tmp_path / "kto",
        kto_rows(pairs(dataset_dir, "train.jsonl"), CURT),
        kto_rows(pairs(dataset_dir, "eval.jsonl"), CURT_HELD_OUT),
    )
    start = demo_models["llama_adapter"]
    base = str(demo_models["llama_base"])
    config = replace(CONFIG, learning_rate=1e-3)
    current = tmp_path / "out" / "tiny-llama"
    shutil.copytree(start, current / "20260101-000000-sft")  # the model's current version
    (current / "LATEST").write_text("20260101-000000-sft\n")
    result = train_preference("kto", "tiny-llama", base, data, tmp_path / "out", config, from_adapter=current)

    metrics = result.manifest["metrics"]
    # The loss (negative log-likelihood) of desirable answers fell relative to that of undesirable
    # ones, on the rows trained on and on held-out tickets with other undesirable answers.
    assert metrics["train_preference_margin_after"] > metrics["train_preference_margin_before"] + 1.0
    assert metrics["eval_preference_margin_after"] > metrics["eval_preference_margin_before"] + 1.0
    assert result.manifest["from_adapter"] == str(current / "20260101-000000-sft")
    assert result.manifest["dataset"]["hash"] and result.manifest["method"] == "kto"
    # A new version never replaces the current one silently: it waits as a candidate.
    assert not result.current and (current / "LATEST").read_text().strip() == "20260101-000000-sft"
    assert result.adapter_dir.parent == current and result.adapter_dir.name.endswith(
        "-kto-" + result.manifest["dataset"]["hash"][:8]
    )
    assert "frozen copy" in result.manifest["reference"]
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert saved["r"] == json.loads((Path(start) / "adapter_config.json").read_text())["r"]
    assert not (result.adapter_dir / "ref").exists()  # TRL's reference adapter is not part of it


@pytest.mark.parametrize(
    ("method", "lines", "message"),
    [
        ("dpo", ['{"prompt": "p", "chosen": "a"}'], "missing rejected"),
        ("kto", ['{"prompt": "p", "completion": "a", "label": "yes"}'], "label must be true or false"),
        ("kto", ['{"prompt": "p", "completion": "a", "label": true}'], "desirable (true) and undesirable"),
        ("dpo", ["not json"], "not valid JSON"),
        ("dpo", ['{"prompt": "p", "chosen": " ", "rejected": "b"}'], "not empty"),
    ],
)
def test_a_bad_preference_file_says_which_line_and_what_is_wrong(
    tmp_path: Path, method: str, lines: list[str], message: str
) -> None:
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(PreferenceDataError, match=re.escape(message)):
        load_preference_dataset(tmp_path, method)
    with pytest.raises(PreferenceDataError, match=r"no train\.jsonl"):
        load_preference_dataset(tmp_path / "missing", method)


def test_the_cli_says_in_one_line_what_a_preference_run_is_missing(
    demo_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from draftdesk.cli import main

    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[[models]]
name = "tiny"
base_model = "{demo_models["llama_base"]}"
"""
    )
    args = ["finetune", "train", "--model", "tiny", "--config", str(config)]
    assert main([*args, "--method", "dpo"]) == 2
    assert "needs a preference dataset folder" in capsys.readouterr().err
    (tmp_path / "prefs").mkdir()
    (tmp_path / "prefs" / "train.jsonl").write_text('{"prompt": "p", "chosen": "a"}\n')
    assert main([*args, "--method", "dpo", "--dataset", str(tmp_path / "prefs")]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:1: dpo rows need prompt, chosen, rejected" in err and "Traceback" not in err
