"""`draftdesk finetune train`: QLoRA with TRL's SFTTrainer, resumable, to a versioned adapter.

One run is identified by its base model, dataset hash and hyperparameters. Its checkpoints live
in ``OUTPUT_DIR/MODEL/runs/RUN_KEY/checkpoints``; running the same command again resumes from
the last checkpoint (``resume_from_checkpoint``), and once the run has finished it says so
instead of training again (``--fresh`` starts over). The result is::

    OUTPUT_DIR/MODEL/VERSION/       adapter_config.json, adapter_model.safetensors, manifest.json
    OUTPUT_DIR/MODEL/LATEST         the newest VERSION

where VERSION is ``YYYYMMDD-HHMMSS-RUNKEY`` (the time the run started). LATEST moves only for a
model's first version: a later one is a candidate until `draftdesk models promote` makes it
current. The manifest records the base model, the dataset hash, every hyperparameter (and what the
hardware made of them: compute dtype, optimizer), train and eval loss, library versions and the date.

Training data: the pairs as prompt/completion (loss on the answer tokens only: TRL's
completion-only loss), and with ``include_articles`` the help-centre articles as plain
language-modelling text (an empty prompt: loss on every token).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig
from finetune.files import files_hash, read_json, write_json, write_text
from finetune.fitting import MIN_PROMPT_TOKENS, NothingFits, article_chunks, fit_pair
from finetune.modeling import adapters_in_float32, find_lora_targets, load_base, load_tokenizer
from finetune.prepare import DATA_FILES, load_dataset_dir
from models.machine import cpu_description
from models.spec import ADAPTER_POINTER

log = logging.getLogger(__name__)

LIBRARIES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets")
MANIFEST = "manifest.json"
LATEST = ADAPTER_POINTER


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    manifest: dict[str, Any]
    already_done: bool = False
    current: bool = True  # LATEST names it; False: a new version waiting to earn its place as a candidate


def set_current_if_first(model_root: Path, version: str, make_current: bool = False) -> bool:
    """Point LATEST at ``version`` when the model has no current version yet (or ``make_current``).

    A later version never silently replaces the current one: it is served as a candidate and
    promoted by `draftdesk models promote` when the raters prefer it. Returns whether it is current.
    """
    pointer = model_root / LATEST
    if pointer.is_file() and not make_current:
        return pointer.read_text(encoding="utf-8").strip() == version
    write_text(pointer, version + "\n")
    return True


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_key(base_model: str, dataset_hash: str, config: TrainConfig) -> str:
    blob = json.dumps({"base": base_model, "data": dataset_hash, "config": asdict(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def current_adapter(output_dir: Path, model_name: str) -> Path | None:
    """The version of ``model_name`` its ``LATEST`` file names (the one the bot drafts with), if any."""
    pointer = Path(output_dir) / model_name / LATEST
    if pointer.is_file():
        current = pointer.parent / pointer.read_text(encoding="utf-8").strip()
        if (current / MANIFEST).is_file():
            return current
    return None


def newest_adapter(output_dir: Path, model_name: str) -> Path | None:
    """The most recently trained version of ``model_name`` (a retrain's candidate, once there is
    one), if any: version folders are named from their start time, so the last name is the newest."""
    folder = Path(output_dir) / model_name
    versions = sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file()) if folder.is_dir() else []
    return versions[-1] if versions else None


def _training_rows(
    train_rows: list[dict], articles: list[dict], tokenizer: Any, config: TrainConfig, product_name: str
) -> tuple[list[dict[str, str]], dict[str, int]]:
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    rows, dropped = [], 0
    for row in train_rows:
        fitted = fit_pair(row, count, config.max_length, product_name)
        if fitted is None:
            dropped += 1
        else:
            rows.append(fitted)
    chunks = 0
    if config.include_articles:
        for article in articles:
            for chunk in article_chunks(article, count, config.max_length):
                rows.append({"prompt": "", "completion": chunk})
                chunks += 1
    return rows, {"pairs": len(rows) - chunks, "pairs_dropped_too_long": dropped, "article_chunks": chunks}


def _optimizer(name: str, on_gpu: bool) -> str:
    """Paged and 8-bit optimizers need CUDA: on the CPU they become plain AdamW."""
    if not on_gpu and ("paged" in name or "8bit" in name or "bnb" in name):
        log.info("optimizer %s needs CUDA: using adamw_torch on the CPU", name)
        return "adamw_torch"
    return name


def train_adapter(
    model_name: str,
    base_model: str,
    dataset_dir: Path,
    output_dir: Path,
    config: TrainConfig,
    fresh: bool = False,
    keep_checkpoints: bool = False,
    callbacks: list[Any] | None = None,
    progress: bool = True,
    make_current: bool = False,
) -> TrainResult:
    """Train (or resume) the adapter of ``model_name`` on the prepared dataset; see the module doc.

    The new version becomes current (LATEST) only if the model has none yet, or with ``make_current``.
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer

    train_rows, eval_rows, articles, card = load_dataset_dir(dataset_dir)
    dataset_hash = files_hash(Path(dataset_dir) / name for name in DATA_FILES)
    if dataset_hash != card.get("dataset_hash"):
        raise ValueError(
            f"{dataset_dir}: the data files do not match card.json (changed by hand?): run "
            "`draftdesk finetune prepare` again"
        )
    if not train_rows:
        raise ValueError(f"{dataset_dir}: no training examples: export more tickets or lower the filters")
    product_name = card["settings"]["product_name"]
    key = run_key(base_model, dataset_hash, config)
    model_root = Path(output_dir) / model_name
    run_dir = model_root / "runs" / key
    run_file = run_dir / "run.json"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run = read_json(run_file) if run_file.is_file() else {}
    if run.get("version") and (model_root / run["version"] / MANIFEST).is_file():
        adapter_dir = model_root / run["version"]
        log.info(
            "already trained: %s (same base, data and settings; use --fresh to train again)", adapter_dir
        )
        current = set_current_if_first(
            model_root, run["version"], make_current
        )  # --make-current still counts
        return TrainResult(adapter_dir, read_json(adapter_dir / MANIFEST), already_done=True, current=current)
    tokenizer = load_tokenizer(base_model)
    rows, row_counts = _training_rows(train_rows, articles, tokenizer, config, product_name)
    if not row_counts["pairs"]:
        shortest = min(_counter(tokenizer)(r["completion"]) for r in train_rows) + 1 + MIN_PROMPT_TOKENS
        raise NothingFits(
            Path(dataset_dir),
            config.max_length,
            f"prompts are shortened to fit, but the shortest answer and a {MIN_PROMPT_TOKENS}-token prompt "
            f"need {shortest}",
        )
    if not run:
        started = datetime.now(UTC)
        run = {"key": key, "started_at": started.isoformat(), "version": f"{started:%Y%m%d-%H%M%S}-{key[:8]}"}
        write_json(run_file, run)

    base = load_base(base_model, config)
    on_gpu = base.device == "cuda"
    if config.quantization != "none":
        model = prepare_model_for_kbit_training(
            base.model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    else:
        model = base.model
    targets = list(config.target_modules) or find_lora_targets(model)
    base.tokenizer.padding_side = "right"
    eval_fitted = [
        f for r in eval_rows if (f := fit_pair(r, _counter(base.tokenizer), config.max_length, product_name))
    ]
    checkpoints = run_dir / "checkpoints"
    has_eval = bool(eval_fitted)
    args = SFTConfig(
        output_dir=str(checkpoints),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,
        optim=_optimizer(config.optim, on_gpu),
        max_grad_norm=config.max_grad_norm,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        max_length=config.max_length,
        packing=config.packing,
        completion_only_loss=True,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=base.dtype == torch.bfloat16 and on_gpu,
        fp16=base.dtype == torch.float16 and on_gpu,
        use_cpu=not on_gpu,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.save_steps if has_eval else None,
        seed=config.seed,
        report_to=[],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
    )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_fitted) if has_eval else None,
        processing_class=base.tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )
    if not on_gpu and (cast := adapters_in_float32(trainer.model)):
        log.info("%d LoRA weights trained in float32 on the CPU (TRL cast them to bfloat16)", cast)
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume is None and has_eval and "eval_loss_before" not in run:
        run["eval_loss_before"] = trainer.evaluate()["eval_loss"]  # the untuned base: LoRA starts at zero
        write_json(run_file, run)
    if resume:
        log.info("resuming from %s", resume)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    output = trainer.train(resume_from_checkpoint=resume)
    runtime = output.metrics.get("train_runtime") or 0.0
    tokens_seen = int(trainer.state.num_input_tokens_seen or 0) - _tokens_at(resume)
    train_loss = _whole_run_loss(trainer.state.log_history) if resume else output.training_loss
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None
    eval_loss = trainer.evaluate()["eval_loss"] if has_eval else None

    adapter_dir = model_root / run["version"]
    manifest = {
        "model": model_name,
        "version": run["version"],
        "created_at": datetime.now(UTC).isoformat(),
        "run_started_at": run["started_at"],
        "base_model": base_model,
        "dataset": {"path": str(dataset_dir), "hash": dataset_hash, "card": card.get("filters", {})},
        "training_data": row_counts,
        "hyperparameters": asdict(config),
        "effective": {
            "target_modules": targets,
            "compute_dtype": str(base.dtype).removeprefix("torch."),
            "adapter_dtype": _adapter_dtype(trainer.model),
            "optimizer": str(getattr(args.optim, "value", args.optim)),
            "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
            "cpu": cpu_description(),
            "quantization": config.quantization,
        },
        "metrics": {
            "train_loss": train_loss,
            "eval_loss_before": run.get("eval_loss_before"),
            "eval_loss": eval_loss,
            "eval_perplexity": math.exp(eval_loss) if eval_loss is not None and eval_loss < 50 else None,
            "global_step": output.global_step,
            "train_runtime_s": runtime,
            "tokens_seen": tokens_seen,  # this session's, without padding (resumed runs: since the resume)
            "tokens_per_second": tokens_seen / runtime if runtime and tokens_seen else None,
            "peak_gpu_memory_gib": peak_gib,
            "resumed_from_checkpoint": Path(resume).name if resume else None,
        },
        "libraries": library_versions(),
        "command": " ".join(sys.argv),
    }
    _save_adapter(trainer.model, adapter_dir, base_model, manifest)
    current = set_current_if_first(model_root, run["version"], make_current)
    if not keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    log.info(
        "adapter written to %s (eval loss %s -> %s)", adapter_dir, run.get("eval_loss_before"), eval_loss
    )
    return TrainResult(adapter_dir, manifest, current=current)


def _tokens_at(checkpoint: str | None) -> int:
    """Input tokens seen up to ``checkpoint`` (0 without one): a resumed run's figures are its own."""
    if not checkpoint:
        return 0
    state = Path(checkpoint) / "trainer_state.json"
    return int(read_json(state).get("num_input_tokens_seen") or 0) if state.is_file() else 0


def _whole_run_loss(log_history: list[dict[str, Any]]) -> float | None:
    """The mean of the logged training losses, before and after a resume (the trainer's own
    ``training_loss`` covers only the steps since the resume, divided by all of them)."""
    losses = [float(entry["loss"]) for entry in log_history if "loss" in entry]
    return sum(losses) / len(losses) if losses else None


def _counter(tokenizer: Any) -> Any:
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    return count


def _save_adapter(
    model: Any,
    adapter_dir: Path,
    base_model: str,
    manifest: dict[str, Any],
    adapter_names: list[str] | None = None,
) -> None:
    """Write the adapter and its manifest to a temporary folder, then rename it into place.

    ``adapter_names``: which of the model's adapters to save (e.g. not TRL's frozen reference copy).
    """
    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=adapter_dir.parent, prefix=f".{adapter_dir.name}-") as tmp:
        staging = Path(tmp) / "adapter"
        if adapter_names:
            model.save_pretrained(str(staging), selected_adapters=adapter_names)
        else:
            model.save_pretrained(str(staging))
        config_path = staging / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        local = Path(base_model).expanduser()
        # An absolute path for a local base, so that a loader never mistakes it for a hub id.
        config["base_model_name_or_path"] = str(local.resolve()) if local.exists() else base_model
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        write_json(staging / MANIFEST, manifest)
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        staging.rename(adapter_dir)


def _adapter_dtype(model: Any) -> str | None:
    """The dtype of the trainable (LoRA) weights when training ended: on a CPU float32, on a GPU
    bfloat16 for a quantized base (TRL's cast) or float32 (peft's) without quantization."""
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad}
    return dtypes.pop() if len(dtypes) == 1 else ", ".join(sorted(dtypes)) or None
