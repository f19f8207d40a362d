"""Settings of the finetune commands: dataclasses with a ``help`` per field, checked as a whole.

``config.toml`` carries them in ``[finetune]`` (paths), ``[finetune.export]``,
``[finetune.prepare]``, ``[finetune.train]`` and ``[finetune.eval]`` (defaults for every model), and
each model's ``[models.finetune]`` table (its own training and evaluation settings, which win).
Every problem is collected and raised together as :class:`core.config.ConfigError`, one line per
key, like the rest of the configuration (each section is built by ``core.config.build_section``).

The training defaults are the QLoRA paper's settings for 7B models (Dettmers et al., 2023): NF4 with double
quantization, bf16 compute, LoRA on all linear layers with r=64, alpha=16, dropout 0.1, learning
rate 2e-4 constant after a 3% warm-up, paged AdamW 32-bit, max_grad_norm 0.3, gradient
checkpointing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from core.config import ConfigError, build_section, parse_iso_datetime, read_toml
from core.config import below_minimum as _below_minimum
from core.config import setting as _help
from core.secrets import Secrets
from finetune.pairs import PAIR_MODES
from integrations.grounding_config import GroundingSettings
from integrations.language_config import LanguageSettings
from integrations.zendesk_config import ZendeskSettings
from models.config import parse_models
from models.spec import ModelSpec


@dataclass(frozen=True)
class PathsConfig:
    """`[finetune]`: where the finetune commands write."""

    workdir: str = _help(
        "where export and prepare write by default; a relative path is relative to the config file",
        ".draftdesk/finetune",
    )
    output_dir: str = _help(
        "where trained adapters are written: OUTPUT_DIR/MODEL/VERSION; relative to the config file",
        "./adapters",
    )

    def resolved(self, base_dir: Path) -> PathsConfig:
        """Both folders absolute: relative ones against ``base_dir`` (the config file's folder), the
        rule every other path in config.toml follows."""
        return replace(
            self,
            workdir=str((base_dir / Path(self.workdir).expanduser()).resolve()),
            output_dir=str((base_dir / Path(self.output_dir).expanduser()).resolve()),
        )


def _date_text(value: Any) -> str:
    """A TOML date (start_time = 2024-01-31) or a string, as the string the export reads."""
    if not isinstance(value, str | date):
        raise ValueError(f'expected a date like "2024-01-31", got {value!r}')
    return str(value)


@dataclass(frozen=True)
class ExportConfig:
    """`[finetune.export]`: what `finetune export` reads from Zendesk."""

    locales: list[str] = _help("Help Center locales to export", factory=lambda: ["en-us"])
    statuses: list[str] = _help("ticket statuses to export", factory=lambda: ["solved", "closed"])
    start_time: str = _help(
        "export tickets changed since this date (YYYY-MM-DD)", "2000-01-01", parse=_date_text
    )
    requests_per_minute: float = _help(
        "pace of the incremental export (Zendesk allows 10 a minute; 0 = no pacing)", 10.0
    )
    include_draft_articles: bool = _help("export unpublished (draft) articles too", False)

    def problems(self) -> list[str]:
        problems = []
        if not self.locales or not all(isinstance(x, str) and x for x in self.locales):
            problems.append('locales: list at least one locale, e.g. ["en-us", "de"]')
        allowed = {"new", "open", "pending", "hold", "solved", "closed"}
        if not self.statuses or not set(self.statuses) <= allowed:
            problems.append(f"statuses: use some of {sorted(allowed)}, got {self.statuses!r}")
        if parse_start_time(self.start_time) is None:
            problems.append(f'start_time: expected a date like "2024-01-31", got {self.start_time!r}')
        return problems + _below_minimum(self, {"requests_per_minute": 0})


@dataclass(frozen=True)
class PrepareConfig:
    """`[finetune.prepare]`: how `finetune prepare` cleans, pairs and splits the export."""

    pairs: str = _help('"first" (question and first answer) or "multi_turn" (every answer)', "first")
    near_duplicate_threshold: float = _help("Jaccard similarity at which questions are near duplicates", 0.6)
    shingle_size: int = _help("words per shingle for near-duplicate detection", 3)
    num_perm: int = _help("MinHash permutations", 128)
    eval_fraction: float = _help("share of tickets held out for evaluation", 0.1)
    seed: int = _help("seed of the train/eval split and of MinHash", 42)
    max_prompt_tokens: int = _help(
        "budget of a rendered prompt (counted by --tokenizer, else ~4 chars a token)", 1536
    )
    min_answer_chars: int = _help("answers shorter than this (after cleaning) do not count as answers", 2)
    product_name: str = _help("product name in the prompt (default: [worker] product_name)", "")

    def problems(self) -> list[str]:
        problems = []
        if self.pairs not in PAIR_MODES:
            problems.append(f"pairs: must be one of {', '.join(PAIR_MODES)}, got {self.pairs!r}")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            problems.append("near_duplicate_threshold: must be in (0, 1] (1 disables near-duplicate removal)")
        if not 1 <= self.shingle_size <= 10:
            problems.append(f"shingle_size: must be between 1 and 10, got {self.shingle_size}")
        if not 16 <= self.num_perm <= 1024:
            problems.append(f"num_perm: must be between 16 and 1024, got {self.num_perm}")
        if not 0.0 <= self.eval_fraction < 1.0:
            problems.append(f"eval_fraction: must be in [0, 1), got {self.eval_fraction}")
        return problems + _below_minimum(self, {"max_prompt_tokens": 64, "min_answer_chars": 1})


@dataclass(frozen=True)
class TrainConfig:
    """`[finetune.train]`: QLoRA training; a model's `[models.finetune]` table overrides it."""

    quantization: str = _help('"nf4" (QLoRA), "fp4", or "none" (plain LoRA on a 16/32-bit base)', "nf4")
    double_quant: bool = _help("quantize the quantization constants too (QLoRA)", True)
    compute_dtype: str = _help('"auto" (bf16 where supported), "bfloat16", "float16" or "float32"', "auto")
    lora_r: int = _help("LoRA rank", 64)
    lora_alpha: int = _help("LoRA scaling numerator (scale = alpha / r)", 16)
    lora_dropout: float = _help("dropout on the LoRA input", 0.1)
    target_modules: list[str] = _help(
        "LoRA targets; empty: every linear layer but the output head", factory=list
    )
    learning_rate: float = _help("peak learning rate", 2e-4)
    lr_scheduler_type: str = _help("transformers scheduler name", "constant_with_warmup")
    warmup_ratio: float = _help("share of the steps spent warming up", 0.03)
    optim: str = _help(
        "optimizer; paged ones need CUDA and fall back to adamw_torch on the CPU", "paged_adamw_32bit"
    )
    max_grad_norm: float = _help("gradient clipping", 0.3)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    per_device_train_batch_size: int = _help("examples per step per device", 16)
    per_device_eval_batch_size: int = _help("examples per eval step", 8)
    gradient_accumulation_steps: int = _help("steps accumulated per optimizer update", 1)
    num_train_epochs: float = _help("passes over the data (ignored when max_steps > 0)", 3.0)
    max_steps: int = _help("optimizer updates; -1: use num_train_epochs", -1)
    max_length: int = _help(
        "tokens per training sequence; longer prompts are rebuilt to fit (KTO, DPO: by `finetune feedback`)",
        1024,
    )
    packing: bool = _help("pack several short examples into one sequence (TRL bfd)", False)
    gradient_checkpointing: bool = _help("recompute activations to save memory", True)
    include_articles: bool = _help("train on help-centre articles as plain text beside the pairs", True)
    logging_steps: int = _help("log every N steps", 10)
    save_steps: int = _help("checkpoint (and evaluate) every N steps", 100)
    save_total_limit: int = _help("checkpoints kept", 3)
    seed: int = _help("training seed", 42)

    def problems(self) -> list[str]:
        problems = []
        if self.quantization not in ("nf4", "fp4", "none"):
            problems.append(f'quantization: must be "nf4", "fp4" or "none", got {self.quantization!r}')
        if self.compute_dtype not in ("auto", "bfloat16", "float16", "float32"):
            problems.append(
                f"compute_dtype: must be auto, bfloat16, float16 or float32, got {self.compute_dtype!r}"
            )
        at_least_one = (
            "lora_r",
            "lora_alpha",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
            "save_total_limit",
        )
        problems += _below_minimum(self, dict.fromkeys(at_least_one, 1))
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        if not 0.0 < self.learning_rate < 1.0:
            problems.append(f"learning_rate: must be in (0, 1), got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append(f"warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.max_grad_norm <= 0:
            problems.append(f"max_grad_norm: must be > 0, got {self.max_grad_norm}")
        if self.max_steps == 0 or self.max_steps < -1:
            problems.append(f"max_steps: must be -1 (use epochs) or >= 1, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            problems.append(f"num_train_epochs: must be > 0, got {self.num_train_epochs}")
        return problems + _below_minimum(self, {"max_length": 32})


@dataclass(frozen=True)
class EvalConfig:
    """`[finetune.eval]`: adapter against base; a model's `[models.finetune.eval]` overrides it."""

    max_generate: int = _help("eval examples that get a generated answer for the overlap score (0: none)", 50)
    max_new_tokens: int = _help("tokens generated per answer", 256)
    batch_size: int = _help("examples per forward pass", 8)

    def problems(self) -> list[str]:
        return _below_minimum(self, {"max_generate": 0, "max_new_tokens": 1, "batch_size": 1})


@dataclass(frozen=True)
class FinetuneSettings:
    paths: PathsConfig
    export: ExportConfig
    prepare: PrepareConfig
    train: TrainConfig
    eval: EvalConfig
    model_tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_model(self, name: str) -> tuple[TrainConfig, EvalConfig]:
        """The model's training and evaluation settings: its ``[models.finetune]`` over the defaults."""
        table = dict(self.model_tables.get(name) or {})
        eval_table = table.pop("eval", None) or {}
        problems: list[str] = []
        prefix = f"models[{name}].finetune"
        train = build_section(TrainConfig, table, prefix, problems, base=self.train)
        evaluation = build_section(EvalConfig, eval_table, f"{prefix}.eval", problems, base=self.eval)
        if problems:
            raise ConfigError(problems)
        return train, evaluation


def parse_start_time(value: str) -> int | None:
    """A date or ISO time as Unix seconds (UTC), or None when unreadable."""
    moment = parse_iso_datetime(str(value))
    return None if moment is None else max(0, int(moment.timestamp()))


def load_finetune_settings(
    finetune_table: Mapping[str, Any] | None, model_tables: Mapping[str, Mapping[str, Any]] | None = None
) -> FinetuneSettings:
    """Validate ``[finetune]`` and each model's ``[models.finetune]``; ConfigError lists every problem."""
    table = dict(finetune_table or {})
    problems: list[str] = []
    subtables = {name: table.pop(name, None) for name in ("export", "prepare", "train", "eval")}
    settings = FinetuneSettings(
        paths=build_section(PathsConfig, table, "finetune", problems),
        export=build_section(ExportConfig, subtables["export"], "finetune.export", problems),
        prepare=build_section(PrepareConfig, subtables["prepare"], "finetune.prepare", problems),
        train=build_section(TrainConfig, subtables["train"], "finetune.train", problems),
        eval=build_section(EvalConfig, subtables["eval"], "finetune.eval", problems),
        model_tables={k: dict(v) for k, v in (model_tables or {}).items()},
    )
    for name in settings.model_tables:
        try:
            settings.for_model(name)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return settings


@dataclass(frozen=True)
class FinetuneContext:
    """What the finetune commands read from ``config.toml``: no Slack, no bot sections.

    ``zendesk`` is None when the file has no ``[zendesk]`` (only ``export`` needs it);
    ``product_name`` is ``[worker] product_name``, the name the bot's prompts use; ``grounding`` is
    `[grounding]`, whose locales and passage budget ``prepare --grounding`` uses.
    """

    finetune: FinetuneSettings
    models: tuple[ModelSpec, ...]
    zendesk: ZendeskSettings | None
    product_name: str
    secrets: Secrets
    grounding: GroundingSettings = field(default_factory=GroundingSettings)
    languages: LanguageSettings = field(default_factory=LanguageSettings)


def load_finetune_context(path: Path, env: Mapping[str, str]) -> FinetuneContext:
    """The sections of ``path`` the finetune commands use, validated together."""
    raw = read_toml(path)
    problems: list[str] = []
    models = parse_models(raw.get("models"), path.parent, problems)
    zendesk = (
        build_section(ZendeskSettings, raw["zendesk"], "zendesk", problems) if "zendesk" in raw else None
    )
    product_name = _product_name(raw.get("worker"), problems)
    grounding = build_section(GroundingSettings, raw.get("grounding"), "grounding", problems)
    languages = build_section(LanguageSettings, raw.get("languages"), "languages", problems)
    finetune_table = raw.get("finetune") or {}
    if not isinstance(finetune_table, Mapping):
        problems.append("[finetune]: must be a table")
        finetune_table = {}
    model_tables = {
        str(table.get("name")): table["finetune"]
        for table in raw.get("models") or []
        if isinstance(table, dict) and isinstance(table.get("finetune"), dict)
    }
    try:
        finetune = load_finetune_settings(finetune_table, model_tables)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    base_dir = path.parent.resolve()
    finetune = replace(finetune, paths=finetune.paths.resolved(base_dir))
    return FinetuneContext(
        finetune,
        models,
        zendesk,
        product_name,
        Secrets.from_env(env),
        grounding.resolved(base_dir),
        languages,
    )


def _product_name(worker: Any, problems: list[str]) -> str:
    """``[worker] product_name``, the one key of the bot's `[worker]` the prompts here need ("": unset).

    The bot's loader checks the rest of `[worker]`; finetune/ may not import bot/.
    """
    value = worker.get("product_name", "") if isinstance(worker, Mapping) else ""
    if not isinstance(value, str):
        problems.append(f"worker.product_name: expected a string, got {value!r}")
        return ""
    return value
