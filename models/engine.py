"""The local draft engine: base models loaded once in 4-bit, LoRA adapters chosen per batch row.

The study's three models are two bases (LLaMa-2-7B with and without its adapter, GPT-J-6B with
its adapter). Each distinct base is loaded once; every adapter on it is attached with PEFT, and
the drafts of all models on one base come out of ONE ``generate()`` call, each row routed to its
adapter with ``adapter_names`` (``"__base__"`` for the untuned model).

Per-model generation settings inside one batch: ``generate()`` takes one temperature / top-p /
repetition penalty / max_new_tokens for the whole batch, so instead of splitting the batch per
setting the engine decodes greedily and puts a logits processor in front that applies each row's
own settings (and samples the row with its own seeded generator, turning the row's scores into a
one-hot choice that the greedy step then takes). Each row's max_new_tokens and stop strings are a
per-row stopping criterion. A row's output therefore does not depend on which other rows share
its batch (up to float noise in batched matmuls).
"""

from __future__ import annotations

import gc
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from bot.domain import DraftResult
from models.cleanup import clean_completion, completion_ids, find_stop

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch

Quantization = Literal["nf4", "none"]


@dataclass(frozen=True)
class ModelSpec:
    """One draft model: a base (local path or downloaded hub id), an optional LoRA adapter, settings.

    ``temperature`` 0 means greedy decoding. ``stop`` strings end the draft (e.g. ``"\\nCustomer:"``
    so the model does not write the customer's next turn). ``max_input_tokens`` caps the prompt;
    without it the cap is the model's context window minus ``max_new_tokens``. ``seed`` makes
    sampling reproducible: every ``generate()`` call starts the model's sampler from it.
    """

    name: str
    base_model: str
    adapter: str | None = None
    quantization: Quantization = "nf4"
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    max_input_tokens: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.name or self.name == BASE_ADAPTER:
            problems.append(f"name must be non-empty and not {BASE_ADAPTER!r}")
        if not self.base_model:
            problems.append("base_model must be a local path or a hub id")
        if self.quantization not in ("nf4", "none"):
            problems.append(f"quantization must be 'nf4' or 'none', got {self.quantization!r}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_input_tokens is not None and self.max_input_tokens < 1:
            problems.append(f"max_input_tokens must be >= 1, got {self.max_input_tokens}")
        if problems:
            raise ValueError(f"model {self.name!r}: " + "; ".join(problems))

    @property
    def base_key(self) -> tuple[str, str]:
        return (self.base_model, self.quantization)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the model, the path and what to do."""


@dataclass
class _Base:
    """One loaded base model with the adapters attached to it."""

    model: Any  # PreTrainedModel, or PeftModel once an adapter is attached
    tokenizer: PreTrainedTokenizerBase
    adapters: dict[str, str] = field(default_factory=dict)  # spec name -> PEFT adapter name

    @property
    def has_adapters(self) -> bool:
        return bool(self.adapters)


@dataclass
class _Row:
    """One prompt to generate for one model, inside a batch."""

    index: int  # position in the caller's result list
    spec: ModelSpec
    prompt: str


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or value.count("/") > 1 or Path(value).exists()


def _sanitize_adapter_name(name: str) -> str:
    # PEFT stores adapters in ModuleDicts: '.' is not allowed in a key.
    return re.sub(r"[^0-9A-Za-z_\-]", "_", name)


class _RowSampler(LogitsProcessor):
    """Applies each row's repetition penalty, temperature and top-p, and samples the row.

    ``generate()`` runs greedily; a sampled row leaves this processor with a single finite score
    (its sampled token), so the greedy argmax takes exactly that token. Greedy rows keep their
    (penalised) scores. Each seeded row has its own generator, so its draws do not depend on the
    other rows in the batch.
    """

    def __init__(self, specs: Sequence[ModelSpec], prompt_starts: Sequence[int]) -> None:
        self.specs = list(specs)
        self.starts = list(prompt_starts)  # index of each row's first real (non-pad) token
        self.generators: list[torch.Generator | None] | None = None

    def _make_generators(self, device: torch.device) -> list[torch.Generator | None]:
        generators: list[torch.Generator | None] = []
        for spec in self.specs:
            if spec.seed is None or spec.temperature == 0:
                generators.append(None)
            else:
                generators.append(torch.Generator(device=device).manual_seed(spec.seed))
        return generators

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:
            self.generators = self._make_generators(scores.device)
        out = scores.clone()
        for row, spec in enumerate(self.specs):
            row_scores = scores[row].float()
            if spec.repetition_penalty != 1.0:
                seen = input_ids[row, self.starts[row] :]
                picked = row_scores.gather(0, seen)
                picked = torch.where(
                    picked < 0, picked * spec.repetition_penalty, picked / spec.repetition_penalty
                )
                row_scores = row_scores.scatter(0, seen, picked)
            if spec.temperature > 0:
                row_scores = row_scores / spec.temperature
                if spec.top_p < 1.0:
                    sorted_scores, order = torch.sort(row_scores, descending=True)
                    cumulative = sorted_scores.softmax(-1).cumsum(-1)
                    # Drop tokens once the mass before them already reaches top_p (keep at least one).
                    drop_sorted = (cumulative - sorted_scores.softmax(-1)) >= spec.top_p
                    drop = drop_sorted.scatter(0, order, drop_sorted)
                    row_scores = row_scores.masked_fill(drop, -math.inf)
                probs = row_scores.softmax(-1)
                token = torch.multinomial(probs, 1, generator=self.generators[row])
                row_scores = torch.full_like(row_scores, -math.inf)
                row_scores[token] = 0.0
            out[row] = row_scores.to(out.dtype)
        return out


class _RowStop(StoppingCriteria):
    """Per-row stop: the row's own max_new_tokens, or one of its stop strings in the new text."""

    def __init__(
        self, specs: Sequence[ModelSpec], prompt_length: int, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        self.specs = list(specs)
        self.prompt_length = prompt_length
        self.tokenizer = tokenizer
        # Decoding a tail of this many tokens is enough to see any stop string (each token is at
        # least one character, or part of one).
        self.tails = [max((len(s) for s in spec.stop), default=0) + 4 for spec in self.specs]

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        new_tokens = input_ids.shape[1] - self.prompt_length
        done = []
        for row, spec in enumerate(self.specs):
            if new_tokens >= spec.max_new_tokens:
                done.append(True)
            elif spec.stop:
                start = max(self.prompt_length, input_ids.shape[1] - self.tails[row])
                tail = self.tokenizer.decode(input_ids[row, start:].tolist(), skip_special_tokens=True)
                done.append(find_stop(tail, spec.stop) is not None)
            else:
                done.append(False)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class DraftEngine:
    """Loads the draft models and generates one draft per model for a prompt.

    Thread-safe: one lock serialises load, generate and close (one model runtime, one GPU).
    """

    def __init__(self, specs: Sequence[ModelSpec], device: str | None = None) -> None:
        if not specs:
            raise ValueError("DraftEngine needs at least one ModelSpec")
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {duplicates}")
        self.specs: tuple[ModelSpec, ...] = tuple(specs)
        self._by_name = {spec.name: spec for spec in self.specs}
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda"):
            self.compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.compute_dtype = torch.float32  # CPU kernels for half precision are slow or missing
        self._bases: dict[tuple[str, str], _Base] = {}
        self._lock = threading.RLock()
        self.base_loads = 0  # how many times a base model was loaded from disk (tests check: once each)

    # ------------------------------------------------------------------ loading

    @property
    def loaded_bases(self) -> list[str]:
        """The base models now in memory (one entry per distinct base and quantization)."""
        return [base for base, _quant in self._bases]

    @property
    def is_loaded(self) -> bool:
        return all(spec.base_key in self._bases for spec in self.specs)

    def load(self) -> None:
        """Load every base once and attach its adapters. Idempotent.

        Raises ModelLoadError naming the model, the path and the fix.
        """
        with self._lock:
            for spec in self.specs:
                self._ensure_loaded(spec)

    def _ensure_loaded(self, spec: ModelSpec) -> _Base:
        base = self._bases.get(spec.base_key)
        if base is None:
            base = self._load_base(spec)
            self._bases[spec.base_key] = base
        if spec.adapter is not None and spec.name not in base.adapters:
            self._attach_adapter(base, spec)
        return base

    def _quantization_config(self, spec: ModelSpec) -> BitsAndBytesConfig | None:
        if spec.quantization == "none":
            return None
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=self.compute_dtype,
            bnb_4bit_use_double_quant=True,
        )

    def _load_base(self, spec: ModelSpec) -> _Base:
        path = spec.base_model
        where = f"model {spec.name!r}: base model {path!r}"
        if _looks_like_path(path) and not Path(path).expanduser().exists():
            raise ModelLoadError(
                f"{where} not found: set base_model to a local path or a hub id you have downloaded"
            )
        path = str(Path(path).expanduser()) if _looks_like_path(path) else path
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(
                path,
                quantization_config=self._quantization_config(spec),
                dtype=self.compute_dtype,
                device_map=self.device,
            )
        except OSError as exc:
            raise ModelLoadError(
                f"{where} not found: set base_model to a local path or a hub id you have downloaded ({exc})"
            ) from exc
        except ImportError as exc:
            raise ModelLoadError(
                f"{where}: a library is missing for quantization={spec.quantization!r} "
                f"(install bitsandbytes, or set quantization = 'none'): {exc}"
            ) from exc
        except Exception as exc:
            raise ModelLoadError(f"{where} could not be loaded: {type(exc).__name__}: {exc}") from exc
        self.base_loads += 1
        model.eval()
        tokenizer.padding_side = "left"  # generation continues at the right edge of every row
        if tokenizer.pad_token_id is None:  # LLaMa-2 and GPT-J ship without a pad token
            tokenizer.pad_token = tokenizer.eos_token
        # The engine owns the sampling settings: drop the checkpoint's defaults (LLaMa-2 ships
        # temperature 0.6 / top_p 0.9) so they cannot leak into generate().
        bos, eos = model.generation_config.bos_token_id, model.generation_config.eos_token_id
        model.generation_config = GenerationConfig(
            bos_token_id=bos if bos is not None else tokenizer.bos_token_id,
            eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return _Base(model=model, tokenizer=tokenizer)

    def _attach_adapter(self, base: _Base, spec: ModelSpec) -> None:
        assert spec.adapter is not None
        path = Path(spec.adapter).expanduser()
        where = f"model {spec.name!r}: adapter {spec.adapter!r}"
        if not (path / "adapter_config.json").is_file():
            raise ModelLoadError(
                f"{where} not found: set adapter to a directory with adapter_config.json "
                "(the output of finetune), or remove it for the untuned base"
            )
        # Two specs with the same adapter (e.g. different temperatures) share one copy of it.
        for other, peft_name in base.adapters.items():
            if self._by_name[other].adapter == spec.adapter:
                base.adapters[spec.name] = peft_name
                return
        peft_name = _sanitize_adapter_name(spec.name)
        if peft_name in base.adapters.values():
            peft_name = f"{peft_name}_{len(base.adapters)}"
        try:
            if not base.has_adapters:
                from peft import PeftModel

                base.model = PeftModel.from_pretrained(
                    base.model, str(path), adapter_name=peft_name, is_trainable=False
                )
            else:
                base.model.load_adapter(str(path), adapter_name=peft_name, is_trainable=False)
        except Exception as exc:
            raise ModelLoadError(
                f"{where} could not be attached to {spec.base_model!r}: {type(exc).__name__}: {exc} "
                "(was it trained on this base model?)"
            ) from exc
        base.model.eval()
        base.adapters[spec.name] = peft_name

    def close(self) -> None:
        """Free the models (and the GPU memory they held)."""
        with self._lock:
            self._bases.clear()
            gc.collect()
            if self.device.startswith("cuda") and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def __enter__(self) -> DraftEngine:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ tokens

    def _spec(self, model_name: str) -> ModelSpec:
        try:
            return self._by_name[model_name]
        except KeyError:
            raise KeyError(f"unknown model {model_name!r}; configured: {sorted(self._by_name)}") from None

    def _base_for(self, spec: ModelSpec) -> _Base:
        with self._lock:
            return self._ensure_loaded(spec)

    def count_tokens(self, model_name: str, text: str) -> int:
        """Tokens ``text`` takes as a prompt for this model, special tokens (e.g. BOS) included."""
        tokenizer = self._base_for(self._spec(model_name)).tokenizer
        return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def context_limit(self, model_name: str) -> int:
        """The most prompt tokens this model may get: max_input_tokens, else context - max_new_tokens."""
        spec = self._spec(model_name)
        if spec.max_input_tokens is not None:
            return spec.max_input_tokens
        base = self._bases.get(spec.base_key)
        config = base.model.config if base is not None else AutoConfig.from_pretrained(spec.base_model)
        window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if not window:
            raise ValueError(
                f"model {model_name!r}: its config has no max_position_embeddings / n_positions; "
                "set max_input_tokens"
            )
        limit = int(window) - spec.max_new_tokens
        if limit < 1:
            raise ValueError(
                f"model {model_name!r}: max_new_tokens={spec.max_new_tokens} leaves no room for a prompt "
                f"in a {window}-token context"
            )
        return limit

    # ------------------------------------------------------------------ generation

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        """One draft per model named in ``prompts``, in spec order.

        Each prompt must already fit the model (see ``context_limit``). A failing model gives a
        DraftResult with ``error`` set; the others still come back.
        """
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        """Like ``generate`` for several tickets at once: all rows on one base share a batch.

        Batching is nearly free on a GPU (NF4 decoding is overhead-bound at batch 1), so queued
        tickets should come through here together.
        """
        for prompts in batch:
            unknown = sorted(set(prompts) - set(self._by_name))
            if unknown:
                raise KeyError(f"unknown model(s) {unknown}; configured: {sorted(self._by_name)}")
        rows: list[_Row] = []
        slots: list[list[int]] = []
        for prompts in batch:
            ticket_slots = []
            for spec in self.specs:
                if spec.name in prompts:
                    ticket_slots.append(len(rows))
                    rows.append(_Row(index=len(rows), spec=spec, prompt=prompts[spec.name]))
            slots.append(ticket_slots)
        results: list[DraftResult | None] = [None] * len(rows)
        with self._lock:
            # Load per model, so that one broken model (say, a missing adapter) spares the others.
            load_errors: dict[str, str] = {}
            for spec in {row.spec.name: row.spec for row in rows}.values():
                try:
                    self._ensure_loaded(spec)
                except ModelLoadError as exc:
                    load_errors[spec.name] = str(exc)
            for row in rows:
                if row.spec.name in load_errors:
                    results[row.index] = DraftResult(row.spec.name, None, error=load_errors[row.spec.name])
            groups: dict[tuple[str, str], list[_Row]] = {}
            for row in rows:
                if results[row.index] is None:
                    groups.setdefault(row.spec.base_key, []).append(row)
            for key, group in groups.items():
                for row, result in zip(group, self._generate_group(self._bases[key], group), strict=True):
                    results[row.index] = result
        return [[results[i] for i in ticket_slots] for ticket_slots in slots]  # type: ignore[misc]

    def _generate_group(self, base: _Base, rows: Sequence[_Row]) -> list[DraftResult]:
        """Generate rows that share a base: one batch, then each failed row alone."""
        results: list[DraftResult | None] = [None] * len(rows)
        runnable: list[int] = []
        for i, row in enumerate(rows):
            too_long = self._check_length(base, row)
            if too_long is not None:
                results[i] = too_long
            else:
                runnable.append(i)
        if not runnable:
            return results  # type: ignore[return-value]
        try:
            batch_results = self._run_batch(base, [rows[i] for i in runnable])
            for i, result in zip(runnable, batch_results, strict=True):
                results[i] = result
        except Exception as batch_exc:
            self._after_failure()
            for i in runnable:
                if len(runnable) == 1:
                    results[i] = self._error(rows[i], batch_exc)
                    continue
                try:
                    results[i] = self._run_batch(base, [rows[i]])[0]
                except Exception as exc:
                    self._after_failure()
                    results[i] = self._error(rows[i], exc)
        return results  # type: ignore[return-value]

    def _check_length(self, base: _Base, row: _Row) -> DraftResult | None:
        tokens = len(base.tokenizer(row.prompt, add_special_tokens=True)["input_ids"])
        limit = self.context_limit(row.spec.name)
        if tokens > limit:
            return DraftResult(
                row.spec.name,
                None,
                error=f"prompt has {tokens} tokens, over the limit of {limit} for model {row.spec.name!r} "
                "(build it with context_limit())",
                prompt_tokens=tokens,
            )
        return None

    def _after_failure(self) -> None:
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()  # after an OOM, give the retry the cached blocks back

    @staticmethod
    def _error(row: _Row, exc: BaseException) -> DraftResult:
        kind = "out of memory" if isinstance(exc, torch.OutOfMemoryError) else type(exc).__name__
        return DraftResult(row.spec.name, None, error=f"generation failed ({kind}): {exc}")

    def _run_batch(self, base: _Base, rows: Sequence[_Row]) -> list[DraftResult]:
        tokenizer = base.tokenizer
        specs = [row.spec for row in rows]
        encoded = tokenizer(
            [row.prompt for row in rows], return_tensors="pt", padding=True, add_special_tokens=True
        )
        input_ids = encoded["input_ids"].to(base.model.device)
        attention_mask = encoded["attention_mask"].to(base.model.device)
        prompt_length = input_ids.shape[1]
        real_lengths = attention_mask.sum(dim=1).tolist()
        kwargs: dict[str, Any] = {}
        if base.has_adapters:
            kwargs["adapter_names"] = [base.adapters.get(spec.name, BASE_ADAPTER) for spec in specs]
        generation_config = GenerationConfig(
            max_new_tokens=max(spec.max_new_tokens for spec in specs),
            do_sample=False,  # _RowSampler samples the rows that want sampling
            num_beams=1,
            repetition_penalty=1.0,
            bos_token_id=base.model.generation_config.bos_token_id,
            eos_token_id=base.model.generation_config.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.inference_mode():
            output = base.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=generation_config,
                logits_processor=LogitsProcessorList(
                    [_RowSampler(specs, [prompt_length - n for n in real_lengths])]
                ),
                stopping_criteria=StoppingCriteriaList([_RowStop(specs, prompt_length, tokenizer)]),
                **kwargs,
            )
        end_ids = _end_ids(generation_config.eos_token_id, tokenizer.pad_token_id)
        results = []
        for row, spec, sequence, n_prompt in zip(rows, specs, output.tolist(), real_lengths, strict=True):
            new = completion_ids(sequence, prompt_length, end_ids)[: spec.max_new_tokens]
            raw = tokenizer.decode(new, skip_special_tokens=True)
            hit_limit = len(new) >= spec.max_new_tokens
            text = clean_completion(raw, spec.stop, truncated=hit_limit)
            results.append(
                DraftResult(
                    row.spec.name,
                    text or None,
                    error=None if text else "the model produced no text",
                    prompt_tokens=int(n_prompt),
                    completion_tokens=len(new),
                )
            )
        return results


def _end_ids(eos: int | Iterable[int] | None, pad: int | None) -> set[int]:
    ids = set() if eos is None else ({eos} if isinstance(eos, int) else set(eos))
    if pad is not None:
        ids.add(pad)
    return ids


__all__ = ["BASE_ADAPTER", "DraftEngine", "ModelLoadError", "ModelSpec"]
