"""`draftdesk finetune train --method dpo|kto`: learning from the agents' ratings with TRL.

- **DPO** (``DPOTrainer``) takes pairs: ``{"prompt", "chosen", "rejected"}``, e.g. a draft rated 4–5
  (or the reply actually sent) against a draft of the same ticket rated 1–2.
- **KTO** (``KTOTrainer``) takes single rated completions: ``{"prompt", "completion", "label"}``,
  ``label`` true for a draft the agents rated positive (3–5). A 1–5 rating maps to it directly.

A preference dataset is a folder with ``train.jsonl`` (and optionally ``eval.jsonl``) of those rows,
prompts already in the bot's transcript format. Training runs QLoRA on the 4-bit base, as ``train``
does. With ``from_adapter`` it continues the current adapter and compares against a frozen copy of it
(TRL's reference adapter); without, a new LoRA adapter is trained against the untuned base. The
result is a new version under ``OUTPUT_DIR/MODEL/`` with a manifest naming the method, the dataset
hash, the starting adapter and the reference, and the held-out preference margin before and after.
It becomes current only if the model has no current version: otherwise it is a candidate.

Every training row must fit ``max_length`` whole, prompt and completion (TRL drops a row whose prompt
fills it and cuts the end off a completion that overflows): the rows that do not are left out and
counted, and a set in which none fits is refused before the model is loaded (``finetune feedback``
writes rows that fit, given the base model's tokenizer).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.prompt import SOURCES_HEADING
from finetune.config import TrainConfig
from finetune.evaluate import encode
from finetune.files import files_hash, numbered_jsonl, read_json, write_json
from finetune.fitting import NothingFits, preference_rows_that_fit
from finetune.modeling import find_lora_targets, load_base, load_tokenizer
from finetune.train import (
    MANIFEST,
    TrainResult,
    _counter,
    _optimizer,
    _save_adapter,
    library_versions,
    run_key,
    set_current_if_first,
)
from models.spec import resolve_adapter_dir

log = logging.getLogger(__name__)

METHODS = ("dpo", "kto")
MARGIN_ROWS = 64  # training rows the margin is also measured on, before and after
COLUMNS = {"dpo": ("prompt", "chosen", "rejected"), "kto": ("prompt", "completion", "label")}


class PreferenceDataError(ValueError):
    """The preference dataset cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class PreferenceSettings:
    beta: float = 0.1  # how far the model may move from the reference (TRL's default)
    desirable_weight: float = 1.0  # KTO: weights to balance unequal numbers of good and bad examples
    undesirable_weight: float = 1.0


def read_rows(path: Path, method: str) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file with the method's columns, checked line by line."""
    columns = COLUMNS[method]
    rows = []
    try:
        numbered = list(numbered_jsonl(path))
    except ValueError as exc:
        raise PreferenceDataError(str(exc)) from None
    for number, row in numbered:
        missing = [c for c in columns if c not in row] if isinstance(row, dict) else list(columns)
        if missing:
            raise PreferenceDataError(
                f"{path}:{number}: {method} rows need {', '.join(columns)}; missing {', '.join(missing)}"
            )
        if method == "kto" and not isinstance(row["label"], bool):
            raise PreferenceDataError(f"{path}:{number}: label must be true or false, got {row['label']!r}")
        texts = [row[c] for c in columns if c != "label"]
        if not all(isinstance(t, str) for t in texts) or not all(t.strip() for t in texts[1:]):
            raise PreferenceDataError(f"{path}:{number}: prompt and completions must be text, not empty")
        rows.append({c: row[c] for c in columns})
    return rows


def load_preference_dataset(folder: Path, method: str) -> tuple[list[dict], list[dict], str]:
    """(train rows, eval rows, hash of the files) of a preference dataset folder."""
    if method not in METHODS:
        raise PreferenceDataError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    folder = Path(folder)
    train_file, eval_file = folder / "train.jsonl", folder / "eval.jsonl"
    if not train_file.is_file():
        raise PreferenceDataError(
            f"{folder} has no train.jsonl: a {method} dataset is a folder with train.jsonl (and eval.jsonl) "
            f"of rows with {', '.join(COLUMNS[method])}"
        )
    train = read_rows(train_file, method)
    evaluation = read_rows(eval_file, method) if eval_file.is_file() else []
    if not train:
        raise PreferenceDataError(f"{train_file} has no rows")
    if method == "kto" and len({row["label"] for row in train}) < 2:
        raise PreferenceDataError(f"{train_file}: KTO needs desirable (true) and undesirable (false) rows")
    files = [f for f in (train_file, eval_file) if f.is_file()]
    return train, evaluation, files_hash(files)


def rows_in_prompt_format(
    train: list[dict], evaluation: list[dict], grounded: bool, folder: Path, model_name: str = ""
) -> tuple[list[dict], list[dict], int]:
    """The rows whose prompts hold Help Center passages (``grounded``) or hold none, and how many
    were left out; refused when no training row is left. A row of the model's own drafts (its
    ``model``) always fits: a grounded model's prompt has no passages when none matched."""

    def fits(row: dict) -> bool:
        own = bool(model_name) and row.get("model") == model_name
        return own or (SOURCES_HEADING in row["prompt"]) == grounded

    kept_train, kept_eval = [r for r in train if fits(r)], [r for r in evaluation if fits(r)]
    left_out = len(train) + len(evaluation) - len(kept_train) - len(kept_eval)
    if not kept_train:
        has = "no training prompt holds" if grounded else "every training prompt holds"
        raise PreferenceDataError(
            f"{folder}: {has} Help Center passages, unlike this model's "
            f"(grounding = {str(grounded).lower()}): train it on the ratings of drafts made with its own "
            "prompt format (a model with the same grounding setting)"
        )
    if left_out:
        log.info("%d row(s) with the other prompt format (grounded or not) left out", left_out)
    return kept_train, kept_eval, left_out


def rows_that_fit(rows: list[dict], tokenizer: Any, max_length: int, folder: Path) -> tuple[list[dict], int]:
    """The training rows that fit ``max_length`` whole, and how many were left out; NothingFits when
    none does."""
    kept, shortest = preference_rows_that_fit(rows, _counter(tokenizer), max_length)
    if not kept:
        raise NothingFits(
            folder,
            max_length,
            f"the shortest needs {shortest}",
            ", or build the set again with `draftdesk finetune feedback --tokenizer BASE_MODEL`, which "
            "shortens the prompts to fit",
        )
    if len(kept) < len(rows):
        log.info("%d row(s) longer than max_length %d left out", len(rows) - len(kept), max_length)
    return kept, len(rows) - len(kept)


def completion_logprob(model: Any, tokenizer: Any, prompt: str, completion: str) -> float:
    """Sum of the log-probabilities of the completion's tokens (and EOS) after the prompt."""
    import torch

    encoded = encode(tokenizer, prompt, completion)
    device = next(model.parameters()).device
    ids = torch.tensor([encoded.input_ids], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits.float()
    logprobs = torch.log_softmax(logits[0, :-1], dim=-1)
    targets = ids[0, 1:]
    picked = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
    return float(picked[encoded.answer_start - 1 :].sum())


def preference_margin(model: Any, tokenizer: Any, rows: list[dict], method: str) -> float | None:
    """DPO: mean log p(chosen) - log p(rejected) over the pairs. KTO: mean log p of the desirable
    completions minus that of the undesirable ones (what KTO's rewards move). Higher means the model
    prefers what the agents preferred; compare a model with itself before training, not two datasets."""
    if not rows:
        return None
    model.eval()
    if method == "dpo":
        margins = [
            completion_logprob(model, tokenizer, r["prompt"], r["chosen"])
            - completion_logprob(model, tokenizer, r["prompt"], r["rejected"])
            for r in rows
        ]
        return sum(margins) / len(margins)
    by_label: dict[bool, list[float]] = {True: [], False: []}
    for row in rows:
        by_label[row["label"]].append(completion_logprob(model, tokenizer, row["prompt"], row["completion"]))
    if not by_label[True] or not by_label[False]:
        return None
    return sum(by_label[True]) / len(by_label[True]) - sum(by_label[False]) / len(by_label[False])


def train_preference(
    method: str,
    model_name: str,
    base_model: str,
    dataset_dir: Path,
    output_dir: Path,
    config: TrainConfig,
    from_adapter: str | Path | None = None,
    settings: PreferenceSettings | None = None,
    progress: bool = True,
    make_current: bool = False,
    grounded: bool = False,
) -> TrainResult:
    """Train a new adapter version of ``model_name`` with DPO or KTO; see the module doc.

    Only rows whose prompts have the model's format are used: with Help Center passages for a
    model with ``grounding = true`` (``grounded``), without for one without (a feedback set holds
    the prompts of every rated model). Training again on the same rows, base, start and settings
    returns the version trained before (``already_done``)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training

    settings = settings or PreferenceSettings()
    train_rows, eval_rows, dataset_hash = load_preference_dataset(dataset_dir, method)
    train_rows, eval_rows, left_out = rows_in_prompt_format(
        train_rows, eval_rows, grounded, dataset_dir, model_name
    )
    start_adapter = resolve_adapter_dir(str(from_adapter)) if from_adapter else None
    if start_adapter is not None and not (start_adapter / "adapter_config.json").is_file():
        raise PreferenceDataError(f"--from-adapter {from_adapter}: no adapter_config.json there")
    model_root = Path(output_dir) / model_name
    run = json.dumps([method, dataset_hash, grounded, str(start_adapter), asdict(settings)], sort_keys=True)
    key = run_key(base_model, run, config)
    run_file = model_root / "runs" / key / "run.json"
    done = read_json(run_file).get("version") if run_file.is_file() else None
    if done and (model_root / done / MANIFEST).is_file():
        log.info("already trained: %s (same base, rows, start and settings)", model_root / done)
        current = set_current_if_first(model_root, done, make_current)  # --make-current still counts
        return TrainResult(model_root / done, read_json(model_root / done / MANIFEST), True, current)

    train_rows, too_long = rows_that_fit(
        train_rows, load_tokenizer(base_model), config.max_length, dataset_dir
    )
    base = load_base(base_model, config)
    on_gpu = base.device == "cuda"
    model = base.model
    if config.quantization != "none":
        checkpointing = config.gradient_checkpointing
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    peft_config = None
    if start_adapter is not None:
        model = PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
        reference = f"a frozen copy of the starting adapter {start_adapter}"
    else:
        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules) or find_lora_targets(model),
            bias="none",
            task_type="CAUSAL_LM",
        )
        reference = "the untuned base (adapter disabled)"
    base.tokenizer.padding_side = "right"
    started = datetime.now(UTC)
    version = f"{started:%Y%m%d-%H%M%S}-{method}-{dataset_hash[:8]}"

    with tempfile.TemporaryDirectory(prefix=f"draftdesk-{method}-") as scratch:
        common = {
            "output_dir": scratch,
            "learning_rate": config.learning_rate,
            "lr_scheduler_type": config.lr_scheduler_type,
            "optim": _optimizer(config.optim, on_gpu),
            "max_grad_norm": config.max_grad_norm,
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "gradient_accumulation_steps": config.gradient_accumulation_steps,
            "num_train_epochs": config.num_train_epochs,
            "max_steps": config.max_steps,
            "max_length": config.max_length,
            "beta": settings.beta,
            "gradient_checkpointing": config.gradient_checkpointing,
            "bf16": base.dtype == torch.bfloat16 and on_gpu,
            "fp16": base.dtype == torch.float16 and on_gpu,
            "use_cpu": not on_gpu,
            "logging_steps": config.logging_steps,
            "save_strategy": "no",
            "seed": config.seed,
            "report_to": [],
            "disable_tqdm": not progress,
            "dataloader_num_workers": 0,
        }
        trainer_class, args = _trainer(method, common, settings)
        # Where training starts: the starting adapter, or the base (a new LoRA adapter starts at zero).
        margin_before = preference_margin(model, base.tokenizer, eval_rows, method)
        seen = train_rows[:MARGIN_ROWS]
        seen_before = preference_margin(model, base.tokenizer, seen, method)
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(train_rows),
            processing_class=base.tokenizer,
            peft_config=peft_config,
        )
        output = trainer.train()
        trained = trainer.model
        if hasattr(trained, "set_adapter") and "default" in getattr(trained, "peft_config", {}):
            trained.set_adapter("default")  # TRL's reference copy ("ref") stays out of the saved adapter
        margin_after = preference_margin(trained, base.tokenizer, eval_rows, method)
        seen_after = preference_margin(trained, base.tokenizer, seen, method)

    manifest = {
        "model": model_name,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "method": method,
        "base_model": base_model,
        "from_adapter": str(start_adapter) if start_adapter else None,
        "reference": reference,
        "dataset": {
            "path": str(dataset_dir),
            "hash": dataset_hash,
            "train": len(train_rows),
            "eval": len(eval_rows),
            "left_out_other_prompt_format": left_out,
            "left_out_too_long": too_long,
        },
        "hyperparameters": {**asdict(config), **asdict(settings)},
        "metrics": {
            "train_loss": output.training_loss,
            "global_step": output.global_step,
            "eval_preference_margin_before": margin_before,
            "eval_preference_margin_after": margin_after,
            "train_preference_margin_before": seen_before,  # on the first training rows
            "train_preference_margin_after": seen_after,
        },
        "libraries": library_versions(),
        "command": " ".join(sys.argv),
    }
    adapter_dir = model_root / version
    _save_adapter(trained, adapter_dir, base_model, manifest, adapter_names=["default"])
    write_json(run_file, {"version": version})
    current = set_current_if_first(model_root, version, make_current)
    log.info("%s adapter: %s (held-out margin %s -> %s)", method, adapter_dir, margin_before, margin_after)
    return TrainResult(adapter_dir, manifest, current=current)


def _trainer(method: str, common: dict[str, Any], settings: PreferenceSettings) -> tuple[Any, Any]:
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig(**common)
    from trl import KTOConfig, KTOTrainer

    weights = {
        "desirable_weight": settings.desirable_weight,
        "undesirable_weight": settings.undesirable_weight,
    }
    return KTOTrainer, KTOConfig(**common, **weights)


__all__ = ["METHODS", "PreferenceDataError", "PreferenceSettings", "preference_margin", "train_preference"]
