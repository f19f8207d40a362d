"""The local draft engine: base models loaded once in 4-bit, LoRA adapters chosen per batch row.

The study's three models are two bases (LLaMa-2-7B with and without its adapter, GPT-J-6B with
its adapter). Each distinct base is loaded once; every adapter on it is read with PEFT and applied
by ``models/batched_lora.py``, and the drafts of all models on one base, for all the tickets handed
over together, come out of as few decoding loops (``models/decoding.py``) as the batch limits
allow: one forward per step for the whole mixed batch, each row with its own adapter (the untuned
model: none). Rows are left-padded. On CUDA the decoding step is compiled into CUDA graphs
(``[engine] compile``).

Per-model generation settings inside one batch: see ``models/sampling.py``. A row's output does
not depend on which other rows share its batch (up to float noise in batched matmuls).

A batch that raises (e.g. CUDA out of memory) is split in halves and retried, down to single
rows; a row that still fails becomes a DraftResult with ``error`` and the other rows come back.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    GenerationConfig,
    PreTrainedTokenizerBase,
)

from core.domain import DraftResult
from models.base_files import missing_base_files
from models.batched_lora import LoraRouter, read_adapter
from models.batching import plan_batches
from models.cleanup import clean_completion
from models.decoding import Decoder, DecodeRow
from models.spec import (
    BASE_ADAPTER,
    DraftRequest,
    EngineSettings,
    ModelLoadError,
    ModelSpec,
    Quantization,
    resolve_adapter_dir,
)

log = logging.getLogger(__name__)


@dataclass
class _Base:
    """One loaded base model with the adapters attached to it."""

    model: Any  # PreTrainedModel; adapters are applied by ``router``'s layers inside it
    tokenizer: PreTrainedTokenizerBase
    router: LoraRouter
    decoder: Decoder
    adapters: dict[str, int] = field(default_factory=dict)  # spec name -> router index
    # Fast tokenizers refuse concurrent use while one call changes padding ("Already borrowed"):
    # counting tokens for a new ticket may run while a batch generates.
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Row:
    """One prompt to generate for one model, inside a batch."""

    index: int  # position in the caller's result list
    spec: ModelSpec  # the model's settings with the request's overrides
    prompt: str
    ignore_eos: bool = False
    prompt_tokens: int = 0


@dataclass
class EngineStats:
    """Counters for tests, benchmarks and logs."""

    generate_calls: int = 0  # decoding loops run (one batch of rows on one base), failed ones included
    rows: int = 0  # rows generated successfully
    retries: int = 0  # batches split in halves after a failure
    batch_sizes: list[int] = field(default_factory=list)  # rows of each decoding loop


def hub_model_downloaded(repo_id: str) -> bool:
    """Whether the hub model's config is in the local cache: without it, loading would try the
    network and retry for a minute before failing."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id
        return False
    return isinstance(found, str)


def looks_like_path(value: str) -> bool:
    """Whether ``base_model`` names a local folder rather than a hub id."""
    return value.startswith(("/", "./", "../", "~")) or value.count("/") > 1 or Path(value).exists()


class DraftEngine:
    """Loads the draft models and generates drafts, batching rows that share a base.

    Thread-safe: one lock serialises load, generate and close (one model runtime, one GPU);
    ``count_tokens`` and ``context_limit`` do not wait for a running batch once models are loaded.
    """

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        device: str | None = None,
        settings: EngineSettings | None = None,
    ) -> None:
        if not specs:
            raise ValueError("DraftEngine needs at least one ModelSpec")
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique, repeated: {duplicates}")
        remote = [spec.name for spec in specs if spec.backend != "local"]
        if remote:
            raise ValueError(f"DraftEngine runs local models only; not local: {remote} (use build_backend)")
        self.settings = settings or EngineSettings()
        self.specs: tuple[ModelSpec, ...] = tuple(specs)
        self._by_name = {spec.name: spec for spec in self.specs}
        device = device or self.settings.device
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda"):
            self.compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.compute_dtype = torch.float32  # CPU kernels for half precision are slow or missing
        self._bases: dict[tuple[str, str], _Base] = {}
        self._lock = threading.RLock()
        self.base_loads = 0  # how many times a base model was loaded from disk (tests check: once each)
        self.stats = EngineStats()

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
        if looks_like_path(path) and not Path(path).expanduser().exists():
            raise ModelLoadError(
                f"{where} not found: set base_model to a local path or a hub id you have downloaded"
            )
        path = str(Path(path).expanduser()) if looks_like_path(path) else path
        missing = missing_base_files(Path(path)) if looks_like_path(path) else []
        if missing:
            raise ModelLoadError(
                f"{where} is incomplete: it lacks {', '.join(missing)}; the download stopped part way: "
                "run the same `hf download … --local-dir` again (it resumes), then `draftdesk doctor`"
            )
        if not looks_like_path(path) and not hub_model_downloaded(path):
            raise ModelLoadError(
                f"{where} is not downloaded: run `hf download {path}` on this machine (for a gated model "
                "such as LLaMa-2, accept its licence on the Hub and export HF_TOKEN first), or set "
                "base_model to a local folder"
            )
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
        # temperature 0.6 / top_p 0.9) so they cannot leak into decoding.
        bos, eos = model.generation_config.bos_token_id, model.generation_config.eos_token_id
        model.generation_config = GenerationConfig(
            bos_token_id=bos if bos is not None else tokenizer.bos_token_id,
            eos_token_id=eos if eos is not None else tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        return self._adopt(model, tokenizer)

    def _adopt(self, model: Any, tokenizer: PreTrainedTokenizerBase) -> _Base:
        max_rows = 1 << (self.settings.max_batch_size - 1).bit_length()
        decoder = Decoder(
            model,
            tokenizer,
            router := LoraRouter(model, self.compute_dtype, max_rows),
            _end_ids(model.generation_config.eos_token_id, tokenizer.pad_token_id),
            compile_step=self.compiles,
            max_rows=max_rows,
        )
        return _Base(model=model, tokenizer=tokenizer, router=router, decoder=decoder)

    def adopt_base(self, spec_name: str, model: Any, tokenizer: PreTrainedTokenizerBase) -> None:
        """Serve ``model`` (already in memory) as the base of ``spec_name`` instead of loading it.

        For benchmarks that build random 7B-shaped models in GPU memory rather than writing 13 GB
        to disk first; the model must be what ``base_model`` would load (its adapters load as usual).
        """
        spec = self._spec(spec_name)
        with self._lock:
            model.eval()
            tokenizer.padding_side = "left"
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._bases[spec.base_key] = self._adopt(model, tokenizer)

    def _attach_adapter(self, base: _Base, spec: ModelSpec) -> None:
        assert spec.adapter is not None
        path = resolve_adapter_dir(spec.adapter)
        where = f"model {spec.name!r}: adapter {spec.adapter!r}"
        if not (path / "adapter_config.json").is_file():
            raise ModelLoadError(
                f"{where} not found: set adapter to a directory with adapter_config.json, or to "
                "`draftdesk finetune train`'s output folder for the model (its LATEST version is used), "
                "or remove it for the untuned base"
            )
        # Two specs with the same adapter (e.g. different temperatures) share one copy of it.
        for other, index in base.adapters.items():
            if self._by_name[other].adapter == spec.adapter:
                base.adapters[spec.name] = index
                return
        try:
            adapter = read_adapter(spec.name, path)
            base.adapters[spec.name] = base.router.add(adapter)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{where}: {exc}") from exc
        except Exception as exc:
            raise ModelLoadError(
                f"{where} could not be attached to {spec.base_model!r}: {type(exc).__name__}: {exc} "
                "(was it trained on this base model?)"
            ) from exc

    @property
    def compiles(self) -> bool:
        """Whether decoding steps are compiled into CUDA graphs (``[engine] compile``)."""
        return self.settings.compile == "auto" and self.device.startswith("cuda")

    @property
    def compile_seconds(self) -> float:
        """Time spent compiling decoding steps so far (each batch and length bucket once)."""
        return sum(base.decoder.stats.compile_seconds for base in self._bases.values())

    def close(self) -> None:
        """Free the models (and the GPU memory they held)."""
        with self._lock:
            for base in self._bases.values():
                base.decoder.release()
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
        base = self._bases.get(spec.base_key)
        if base is not None and (spec.adapter is None or spec.name in base.adapters):
            return base  # loaded: no need to wait for a running batch
        with self._lock:
            return self._ensure_loaded(spec)

    def _count(self, base: _Base, text: str) -> int:
        return len(self._encode(base, text))

    @staticmethod
    def _encode(base: _Base, text: str, special: bool = True) -> list[int]:
        with base.tokenizer_lock:
            return list(base.tokenizer(text, add_special_tokens=special, verbose=False)["input_ids"])

    def tokenize(self, model_name: str, text: str, add_special_tokens: bool = True) -> list[int]:
        """The token ids of ``text`` for this model (``serve-models``' ``/tokenize``)."""
        return self._encode(self._base_for(self._spec(model_name)), text, add_special_tokens)

    def count_tokens(self, model_name: str, text: str) -> int:
        """Tokens ``text`` takes as a prompt for this model, special tokens (e.g. BOS) included."""
        spec = self._spec(model_name)
        return self._count(self._base_for(spec), text)

    def context_window(self, model_name: str) -> int:
        """The model's context window in tokens (prompt and new tokens together)."""
        spec = self._spec(model_name)
        base = self._bases.get(spec.base_key)
        config = base.model.config if base is not None else AutoConfig.from_pretrained(spec.base_model)
        window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if not window:
            raise ValueError(
                f"model {model_name!r}: its config has no max_position_embeddings / n_positions; "
                "set max_input_tokens"
            )
        return int(window)

    def context_limit(self, model_name: str) -> int:
        """The most prompt tokens this model may get: max_input_tokens, else context - max_new_tokens."""
        return self._limit_for(self._spec(model_name))

    def _limit_for(self, spec: ModelSpec) -> int:
        if spec.max_input_tokens is not None:
            return spec.max_input_tokens
        window = self.context_window(spec.name)
        limit = window - spec.max_new_tokens
        if limit < 1:
            raise ValueError(
                f"model {spec.name!r}: max_new_tokens={spec.max_new_tokens} leaves no room for a prompt "
                f"in a {window}-token context"
            )
        return limit

    # ------------------------------------------------------------------ generation

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        """One draft per model named in ``prompts``, in spec order (the order of ``specs``).

        Each prompt must already fit the model (see ``context_limit``). A failing model gives a
        DraftResult with ``error`` set; the others still come back.
        """
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        """Like ``generate`` for several tickets at once: one result list per ticket, in spec order.

        All rows on one base share decoding loops, up to ``max_batch_size`` rows and
        ``max_batch_tokens`` per call. Batching is nearly free on a GPU (NF4 decoding is
        overhead-bound at batch 1), so queued tickets should come through here together.
        Raises KeyError for a model name that is not configured (a caller's bug).
        """
        for prompts in batch:
            unknown = sorted(set(prompts) - set(self._by_name))
            if unknown:
                raise KeyError(f"unknown model(s) {unknown}; configured: {sorted(self._by_name)}")
        requests: list[DraftRequest] = []
        slots: list[list[int]] = []
        for prompts in batch:
            ticket_slots = []
            for spec in self.specs:
                if spec.name in prompts:
                    ticket_slots.append(len(requests))
                    requests.append(DraftRequest(spec.name, prompts[spec.name]))
            slots.append(ticket_slots)
        results = self.run(requests)
        return [[results[i] for i in ticket_slots] for ticket_slots in slots]

    def run(self, requests: Sequence[DraftRequest]) -> list[DraftResult]:
        """One DraftResult per request, in request order; overrides in a request apply to its row.

        Raises KeyError for an unknown model; every other failure is a DraftResult with ``error``.
        """
        results: list[DraftResult | None] = [None] * len(requests)
        rows: list[_Row] = []
        for index, request in enumerate(requests):
            spec = self._spec(request.model)
            try:
                settings = request.settings_for(spec)
            except ValueError as exc:
                results[index] = DraftResult(spec.name, None, error=f"invalid request: {exc}")
                continue
            rows.append(_Row(index, settings, request.prompt, request.ignore_eos))
        with self._lock:
            # Load per model, so that one broken model (say, a missing adapter) spares the others.
            load_errors: dict[str, str] = {}
            for name in dict.fromkeys(row.spec.name for row in rows):
                try:
                    self._ensure_loaded(self._by_name[name])
                except ModelLoadError as exc:
                    load_errors[name] = str(exc)
            groups: dict[tuple[str, str], list[_Row]] = {}
            for row in rows:
                if row.spec.name in load_errors:
                    results[row.index] = DraftResult(row.spec.name, None, error=load_errors[row.spec.name])
                else:
                    groups.setdefault(row.spec.base_key, []).append(row)
            for key, group in groups.items():
                for row, result in zip(group, self._generate_group(self._bases[key], group), strict=True):
                    results[row.index] = result
        return results  # type: ignore[return-value]

    def _generate_group(self, base: _Base, rows: Sequence[_Row]) -> list[DraftResult]:
        """Rows that share a base: in calls within the batch limits, each retried on failure."""
        results: list[DraftResult | None] = [None] * len(rows)
        runnable: list[int] = []
        for i, row in enumerate(rows):
            too_long = self._check_length(base, row)
            if too_long is not None:
                results[i] = too_long
            else:
                runnable.append(i)
        plan = plan_batches(
            [rows[i].prompt_tokens for i in runnable],
            [rows[i].spec.max_new_tokens for i in runnable],
            self.settings.max_batch_size,
            self.settings.max_batch_tokens,
        )
        for chunk in plan:
            indices = [runnable[j] for j in chunk]
            for i, result in zip(
                indices, self._run_with_retry(base, [rows[i] for i in indices]), strict=True
            ):
                results[i] = result
        return results  # type: ignore[return-value]

    def _run_with_retry(self, base: _Base, rows: Sequence[_Row]) -> list[DraftResult]:
        """Run one batch; if it raises (out of memory, say), run each half, down to single rows."""
        try:
            return self._run_batch(base, rows)
        except Exception as exc:
            self._after_failure()
            if len(rows) == 1:
                log.warning("model %r failed on its own: %s", rows[0].spec.name, exc)
                return [self._error(rows[0], exc)]
            self.stats.retries += 1
            half = (len(rows) + 1) // 2
            log.warning(
                "a batch of %s rows on %s failed (%s); retrying as %s + %s rows",
                len(rows),
                rows[0].spec.base_model,
                self._kind(exc),
                half,
                len(rows) - half,
            )
            return self._run_with_retry(base, rows[:half]) + self._run_with_retry(base, rows[half:])

    def _check_length(self, base: _Base, row: _Row) -> DraftResult | None:
        row.prompt_tokens = tokens = self._count(base, row.prompt)
        try:
            limit = self._limit_for(row.spec)
        except ValueError as exc:
            return DraftResult(row.spec.name, None, error=str(exc), prompt_tokens=tokens)
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
        for base in self._bases.values():
            base.decoder.release()  # kept caches of compiled shapes: give their memory to the retry
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()  # after an OOM, give the retry the cached blocks back

    @staticmethod
    def _kind(exc: BaseException) -> str:
        return "out of memory" if isinstance(exc, torch.OutOfMemoryError) else type(exc).__name__

    @classmethod
    def _error(cls, row: _Row, exc: BaseException) -> DraftResult:
        return DraftResult(
            row.spec.name,
            None,
            error=f"generation failed ({cls._kind(exc)}): {exc}",
            prompt_tokens=row.prompt_tokens,
        )

    def _run_batch(self, base: _Base, rows: Sequence[_Row]) -> list[DraftResult]:
        tokenizer = base.tokenizer
        with base.tokenizer_lock:
            encoded = tokenizer(
                [row.prompt for row in rows], return_tensors="pt", padding=True, add_special_tokens=True
            )
        input_ids = encoded["input_ids"].to(base.model.device)
        attention_mask = encoded["attention_mask"].to(base.model.device)
        real_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        plan = [
            DecodeRow(
                temperature=row.spec.temperature,
                top_p=row.spec.top_p,
                repetition_penalty=row.spec.repetition_penalty,
                seed=row.spec.seed,
                ignore_eos=row.ignore_eos,
                max_new_tokens=row.spec.max_new_tokens,
                stop=tuple(row.spec.stop),
                adapter=base.adapters.get(row.spec.name, -1),
            )
            for row in rows
        ]
        self.stats.generate_calls += 1
        self.stats.batch_sizes.append(len(rows))
        with torch.inference_mode():
            generated = base.decoder.generate(input_ids, attention_mask, plan)
        results = []
        for row, new, n_prompt in zip(rows, generated, real_lengths, strict=True):
            spec = row.spec
            with base.tokenizer_lock:
                raw = tokenizer.decode(new, skip_special_tokens=True)
            hit_limit = len(new) >= spec.max_new_tokens
            text = clean_completion(raw, spec.stop, truncated=hit_limit and not row.ignore_eos)
            results.append(
                DraftResult(
                    row.spec.name,
                    text or None,
                    error=None if text else "the model produced no text",
                    prompt_tokens=int(n_prompt),
                    completion_tokens=len(new),
                )
            )
        self.stats.rows += len(rows)
        return results


def _end_ids(eos: int | Iterable[int] | None, pad: int | None) -> set[int]:
    ids = set() if eos is None else ({eos} if isinstance(eos, int) else set(eos))
    if pad is not None:
        ids.add(pad)
    return ids


__all__ = [
    "BASE_ADAPTER",
    "DraftEngine",
    "DraftRequest",
    "EngineStats",
    "ModelLoadError",
    "ModelSpec",
    "Quantization",
]
