"""QLoRA training with TRL on tiny LLaMA- and GPT-J-shaped models: real NF4 + LoRA on the CPU.

A short run must lower the eval loss below the untuned base's, its adapter must load into the
draft engine (models/), an interrupted run must resume from its last checkpoint, and the CLI must
drive export → prepare → train → eval from a config file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from draftdesk.cli import main
from finetune.config import EvalConfig, TrainConfig
from finetune.evaluate import evaluate_adapter
from finetune.modeling import find_lora_targets, load_base
from finetune.sample import SAMPLE_PRODUCT
from finetune.train import LATEST, train_adapter
from models.engine import DraftEngine, ModelSpec

TINY = TrainConfig(
    lora_r=8,
    lora_alpha=16,
    lora_dropout=0.0,
    learning_rate=5e-3,
    warmup_ratio=0.0,
    max_steps=8,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    max_length=384,
    logging_steps=4,
    save_steps=100,
)


def test_lora_targets_are_found_for_both_families(demo_models: dict) -> None:
    import bitsandbytes as bnb

    llama = load_base(str(demo_models["llama_base"]), TINY).model
    gptj = load_base(str(demo_models["gptj_base"]), TINY).model
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in llama.modules())  # really 4-bit
    assert find_lora_targets(llama) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]
    assert find_lora_targets(gptj) == ["fc_in", "fc_out", "k_proj", "out_proj", "q_proj", "v_proj"]


def test_short_run_beats_the_untuned_base_and_loads_into_the_engine(
    demo_models: dict, dataset_dir: Path, tmp_path: Path
) -> None:
    base = str(demo_models["llama_base"])
    result = train_adapter("tiny-llama-ft", base, dataset_dir, tmp_path, TINY, progress=False)

    manifest = json.loads((result.adapter_dir / "manifest.json").read_text())
    card = json.loads((dataset_dir / "card.json").read_text())
    assert manifest["base_model"] == base and manifest["dataset"]["hash"] == card["dataset_hash"]
    assert manifest["hyperparameters"]["lora_r"] == 8 and manifest["effective"]["quantization"] == "nf4"
    assert manifest["effective"]["optimizer"] == "adamw_torch"  # paged AdamW needs CUDA
    # TRL casts QLoRA adapters to bfloat16; on the CPU they train in the float32 compute dtype.
    assert manifest["effective"]["compute_dtype"] == manifest["effective"]["adapter_dtype"] == "float32"
    assert {"torch", "transformers", "peft", "trl", "bitsandbytes"} <= set(manifest["libraries"])
    assert manifest["training_data"]["article_chunks"] > 0 and manifest["metrics"]["global_step"] == 8
    assert manifest["metrics"]["eval_loss"] < manifest["metrics"]["eval_loss_before"]
    assert (tmp_path / "tiny-llama-ft" / LATEST).read_text().strip() == result.adapter_dir.name
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(Path(base).resolve())
    assert not list((tmp_path / "tiny-llama-ft" / "runs").glob("*/checkpoints/checkpoint-*"))  # cleaned up

    report = evaluate_adapter(
        "tiny-llama-ft",
        base,
        result.adapter_dir,
        dataset_dir,
        TINY,
        EvalConfig(max_generate=2, max_new_tokens=8),
    )
    assert report["adapter_metrics"]["loss"] < report["base"]["loss"]
    assert report["adapter_metrics"]["perplexity"] < report["base"]["perplexity"]
    assert report["generated"] == 2 and report["base"]["chrf"] is not None
    # Per customer language too: every eval example is counted in its ticket's language.
    languages = {json.loads(line)["language"] for line in (dataset_dir / "eval.jsonl").open()}
    assert set(report["languages"]) == languages
    assert sum(p["eval_examples"] for p in report["languages"].values()) == report["eval_examples"]
    assert sum(p["generated"] for p in report["languages"].values()) == 2
    assert all(
        p["base"]["loss"] > 0 and p["adapter_metrics"]["loss"] > 0 for p in report["languages"].values()
    )

    # The config names the model's adapters folder; the engine follows its LATEST version.
    engine = DraftEngine(
        [ModelSpec("tiny-llama-ft", base, str(tmp_path / "tiny-llama-ft"), max_new_tokens=6, temperature=0)]
    )
    with engine:
        [draft] = engine.generate(
            {"tiny-llama-ft": "Subject: Backup stuck\n\nCustomer: It is stuck.\n\nAgent:"}
        )
    # The adapter loaded (a load failure names the adapter) and generated tokens; the tiny model's
    # text may be whitespace only, which the engine reports as "no text".
    assert draft.error in (None, "the model produced no text") and draft.completion_tokens > 0


def test_packing_fills_each_batch_with_more_answer_tokens(
    demo_models: dict, dataset_dir: Path, tmp_path: Path
) -> None:
    base = str(demo_models["llama_base"])
    padded = TrainConfig(**{**TINY.__dict__, "max_steps": 6})
    packed = TrainConfig(**{**TINY.__dict__, "max_steps": 6, "packing": True})
    plain = train_adapter("plain", base, dataset_dir, tmp_path, padded, progress=False).manifest
    result = train_adapter("packed", base, dataset_dir, tmp_path, packed, progress=False)

    metrics = result.manifest["metrics"]
    assert result.manifest["hyperparameters"]["packing"] is True
    assert metrics["global_step"] == 6 and metrics["eval_loss"] < metrics["eval_loss_before"]
    # Same steps and batch size; packed rows hold several examples, padded rows hold one (the rows
    # with a whole article chunk are full either way: 13% more tokens on the sample of 100 tickets).
    assert metrics["tokens_seen"] > 1.1 * plain["metrics"]["tokens_seen"]
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_from_its_last_checkpoint(
    demo_models: dict, dataset_dir: Path, tmp_path: Path
) -> None:
    from transformers import TrainerCallback

    class StopAtStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == 3:
                raise Interrupted

    base = str(demo_models["gptj_base"])
    config = TrainConfig(**{**TINY.__dict__, "max_steps": 4, "save_steps": 2})
    with pytest.raises(Interrupted):
        train_adapter(
            "tiny-gptj-ft", base, dataset_dir, tmp_path, config, callbacks=[StopAtStep3()], progress=False
        )
    [checkpoint] = (tmp_path / "tiny-gptj-ft" / "runs").glob("*/checkpoints/checkpoint-2")

    resumed = train_adapter("tiny-gptj-ft", base, dataset_dir, tmp_path, config, progress=False)
    assert resumed.manifest["metrics"]["resumed_from_checkpoint"] == "checkpoint-2"
    assert resumed.manifest["metrics"]["global_step"] == 4
    assert not checkpoint.exists()  # cleaned up after success

    again = train_adapter("tiny-gptj-ft", base, dataset_dir, tmp_path, config, progress=False)
    assert again.already_done and again.adapter_dir == resumed.adapter_dir


def test_a_resumed_run_records_its_own_figures(demo_models: dict, dataset_dir: Path, tmp_path: Path) -> None:
    """A resumed run's manifest: no tokens from before the resume per second of the session."""
    from transformers import TrainerCallback

    class KilledAfterSaving(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            raise Interrupted

    base = str(demo_models["gptj_base"])
    config = TrainConfig(**{**TINY.__dict__, "max_steps": 2, "save_steps": 2, "logging_steps": 1})
    with pytest.raises(Interrupted):
        train_adapter(
            "tiny-gptj-ft",
            base,
            dataset_dir,
            tmp_path,
            config,
            callbacks=[KilledAfterSaving()],
            progress=False,
        )
    [state] = (tmp_path / "tiny-gptj-ft" / "runs").glob("*/checkpoints/checkpoint-2/trainer_state.json")
    tokens_before = json.loads(state.read_text())["num_input_tokens_seen"]
    resumed = train_adapter("tiny-gptj-ft", base, dataset_dir, tmp_path, config, progress=False)
    metrics = resumed.manifest["metrics"]
    assert metrics["resumed_from_checkpoint"] == "checkpoint-2"
    # The figures are the resumed session's: its tokens over its seconds, not all tokens over them.
    assert 0 < metrics["tokens_seen"] < tokens_before
    assert metrics["tokens_per_second"] == metrics["tokens_seen"] / metrics["train_runtime_s"]
    # The loss is the whole run's (the logged steps' mean), not the session's sum over every step.
    assert metrics["train_loss"] > 0.8 * metrics["eval_loss_before"]


def test_cli_runs_export_prepare_train_and_eval_from_a_config(
    demo_models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[slack]
channel = "C1"
[zendesk]
url = "https://acme.zendesk.com"
[worker]
product_name = "{SAMPLE_PRODUCT}"
[finetune]
workdir = "work"
output_dir = "adapters"
[finetune.export]
locales = ["en-us"]
[finetune.prepare]
eval_fraction = 0.15
[finetune.train]
lora_r = 8
learning_rate = 5e-3
warmup_ratio = 0.0
max_steps = 20
per_device_train_batch_size = 8
max_length = 384
[finetune.eval]
max_generate = 1
max_new_tokens = 4
[[models]]
name = "tiny-gptj-ft"
base_model = "{demo_models["gptj_base"]}"
[models.finetune]
lora_dropout = 0.0
"""
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative [finetune] paths follow the config file, not the shell
    args = ["--config", str(config)]
    assert main(["finetune", "export", "--sample", *args]) == 0
    assert (tmp_path / "work" / "export").is_dir() and not (elsewhere / "work").exists()
    assert main(["finetune", "prepare", *args]) == 0
    assert main(["finetune", "train", "--model", "tiny-gptj-ft", "--max-steps", "3", *args]) == 0
    assert main(["finetune", "eval", "--model", "tiny-gptj-ft", *args]) == 0
    out = capsys.readouterr().out
    assert "train /" in out and "untuned base" in out and "report:" in out
    assert f"adapter: {tmp_path.resolve() / 'adapters' / 'tiny-gptj-ft'}" in out
    assert not list(elsewhere.iterdir())
    [report_path] = (tmp_path / "adapters" / "tiny-gptj-ft").glob("*/eval.json")
    report = json.loads(report_path.read_text())
    manifest = json.loads((report_path.parent / "manifest.json").read_text())
    assert manifest["hyperparameters"]["lora_dropout"] == 0.0  # the model's own table
    assert manifest["hyperparameters"]["max_steps"] == 3  # the command line wins
    assert report["eval_examples"] > 0

    # A retrain makes a candidate; eval then measures it (the newest version), not the current one.
    adapters = tmp_path / "adapters" / "tiny-gptj-ft"
    first = (adapters / "LATEST").read_text().strip()
    assert main(["finetune", "train", "--model", "tiny-gptj-ft", "--max-steps", "2", *args]) == 0
    [second] = [p.name for p in adapters.iterdir() if (p / "manifest.json").is_file() and p.name != first]
    capsys.readouterr()
    assert main(["finetune", "eval", "--model", "tiny-gptj-ft", "--max-generate", "0", *args]) == 0
    out, err = capsys.readouterr()
    assert f"tiny-gptj-ft @ {second}, the newest version, not current: a candidate" in err
    assert (adapters / second / "eval.json").is_file() and (adapters / "LATEST").read_text().strip() == first
    # --adapter takes the model's folder as `adapter =` does: the version LATEST names.
    assert main(["finetune", "eval", "--model", "tiny-gptj-ft", "--adapter", str(adapters), *args]) == 0
    assert f"report: {(adapters / first / 'eval.json').resolve()}" in capsys.readouterr().out

    assert main(["finetune", "train", "--model", "nope", *args]) == 2
    assert "no [[models]] entry" in capsys.readouterr().err
    assert main(["finetune", "prepare", "--in", str(tmp_path / "missing"), *args]) == 2
    assert "run `draftdesk finetune export" in capsys.readouterr().err


def test_the_benchmark_script_runs_the_real_training_path(tmp_path: Path) -> None:
    from finetune.benchmark import run_benchmark

    figures = run_benchmark("tiny-llama", 2, tmp_path, TrainConfig(per_device_train_batch_size=4, lora_r=8))
    assert figures["steps"] == 2 and figures["tokens_seen"] > 0 and figures["tokens_per_second"] > 0
    assert figures["device"] == "cpu" and figures["peak_gpu_memory_gib"] is None


def test_a_folder_left_beside_the_shell_is_pointed_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative [finetune] folders were once read against the working directory: say where they are now."""
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "config.toml"
    config.write_text(
        '[finetune]\noutput_dir = "adapters"\nworkdir = "finetune"\n'
        '[[models]]\nname = "m"\nbase_model = "/nope"\n'
    )
    (tmp_path / "shell" / "adapters" / "m").mkdir(parents=True)
    (tmp_path / "shell" / "adapters" / "m" / "LATEST").write_text("20260101-000000-abc\n")
    (tmp_path / "shell" / "finetune").mkdir()  # a source checkout's package: not a workdir
    (tmp_path / "shell" / "finetune" / "__init__.py").write_text("")
    monkeypatch.chdir(tmp_path / "shell")
    assert main(["finetune", "eval", "--model", "m", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    now, before = tmp_path / "etc" / "adapters", tmp_path / "shell" / "adapters"
    assert f"now: {now} (not {before}, which exists)" in err
    assert "workdir" not in err  # ./finetune holds no export or dataset: nothing was moved
    (tmp_path / "etc" / "adapters").mkdir()  # moved: nothing more to say
    assert main(["finetune", "eval", "--model", "m", "--config", str(config)]) == 2
    assert "relative to the config file now" not in capsys.readouterr().err
