"""What the bot configures about its models: one ``ModelSpec`` per draft, one ``EngineSettings``.

Pure data with validation, no torch: ``models/config.py`` builds these from ``config.toml`` with
``core.config.build_section``; code (tests, benchmarks, request overrides) makes them directly, and
the same bounds apply (``__post_init__`` raises ValueError listing every problem).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from core.config import check_section, out_of_range, setting
from core.languages import is_language_code

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
DEFAULT_API_KEY_ENV = "DRAFTDESK_MODELS_API_KEY"

Quantization = Literal["nf4", "none"]
BackendKind = Literal["local", "openai"]
BACKENDS: tuple[str, ...] = ("local", "openai")
CompileMode = Literal["auto", "off"]
COMPILE_MODES: tuple[str, ...] = ("auto", "off")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the model, the path and what to do.

    Declared here, without torch, so that the command line can catch it without importing torch."""


@dataclass(frozen=True)
class ModelSpec:
    """`[[models]]`: one draft model, where it runs, what it is, and its generation settings.

    ``backend = "local"``: a base (local path or downloaded hub id) with an optional LoRA adapter,
    run by the in-process engine. ``backend = "openai"``: any OpenAI-compatible server at
    ``base_url`` (vLLM, ``draftdesk serve-models``); ``remote_model`` is the model id there
    (default: ``name``), the API key is read from the environment variable ``api_key_env``.

    ``temperature`` 0 means greedy decoding. ``stop`` strings end the draft (e.g. ``"\\nCustomer:"``
    so the model does not write the customer's next turn); none here, but ``[[models]]`` in the
    config defaults to ``core.prompt.STOP_SEQUENCES``. ``max_input_tokens`` caps the prompt;
    without it the cap is the model's context window minus ``max_new_tokens``. ``seed`` makes
    sampling reproducible: every ``generate()`` call starts the model's sampler from it.

    The bounds below hold for the config file, for code and for per-request overrides alike.
    """

    name: str = setting('the draft\'s name in Slack and the reports, unique, e.g. name = "llama2-7b-ft"')
    base_model: str = setting(
        'hub id like "meta-llama/Llama-2-7b-hf" or a local path (./ is the config file folder); '
        "local backend only",
        "",
        shown_default="required for the local backend",
    )
    adapter: str | None = setting(
        "LoRA adapter folder, or a folder of versions with a LATEST file; unset: the untuned base", None
    )
    quantization: Quantization = setting('"nf4" (4-bit, QLoRA) or "none"', "nf4")
    max_new_tokens: int = setting("longest draft, in tokens", 256)
    temperature: float = setting("sampling temperature; 0 is greedy decoding", 0.7)
    top_p: float = setting("nucleus sampling: the share of probability mass sampled from", 0.9)
    repetition_penalty: float = setting("penalty on repeated tokens; 1 is none", 1.1)
    stop: tuple[str, ...] = setting(
        "strings that end the draft; `stop = []` for none",
        (),
        shown_default='["\\nCustomer:", "\\nAgent:"] (the turn markers; in code: none)',
    )
    max_input_tokens: int | None = setting(
        "cap on the prompt's tokens", None, shown_default="context window minus max_new_tokens"
    )
    seed: int | None = setting("sampling seed, for reproducible drafts", None)
    candidate: str | None = setting(
        "an adapter version to try against the current one: a VERSION in the adapter folder, or a "
        "path; served instead of the current adapter for candidate_share of tickets (local backend)",
        None,
    )
    candidate_share: float = setting("the share of tickets the candidate drafts for, in (0, 1)", 0.5)
    grounding: bool = setting(
        "put the Help Center passages that match the ticket into this model's prompt ([grounding])", False
    )
    languages: tuple[str, ...] = setting(
        'the customer languages (ISO 639-1) this model drafts in, e.g. ["en", "de"]; a ticket in another '
        "language gets no draft from it",
        (),
        shown_default="every language",
    )
    backend: BackendKind = setting(
        '"local" (this process) or "openai" (an OpenAI-compatible server: vLLM, serve-models)', "local"
    )
    base_url: str | None = setting('openai backend: the server, e.g. "http://gpu-box:8000/v1"', None)
    remote_model: str | None = setting(
        "openai backend: the model id on the server", None, key="model", shown_default="name"
    )
    api_key_env: str | None = setting(
        "openai backend: NAME of the environment variable holding the API key",
        None,
        shown_default=f"{DEFAULT_API_KEY_ENV} if set, else no key",
    )
    timeout_seconds: float = setting("openai backend: seconds one request may take", 120.0)
    max_retries: int = setting("openai backend: retries of a failed request", 3)
    tokenizer: str | None = setting(
        "openai backend: tokenizer path or hub id to count prompt tokens locally", None
    )

    def __post_init__(self) -> None:
        check_section(self, f"model {self.name!r}")

    def problems(self) -> list[str]:
        """One line per value out of bounds, naming its key (the choices are checked from the types)."""
        problems = []
        if not self.name or self.name == BASE_ADAPTER:
            problems.append(f"name: must be non-empty and not {BASE_ADAPTER!r}")
        if self.backend == "local" and not self.base_model:
            problems.append('base_model: missing: a hub id like "meta-llama/Llama-2-7b-hf" or a local path')
        if self.backend == "openai" and not (self.base_url or "").startswith(("http://", "https://")):
            problems.append(
                f'base_url: backend "openai" needs base_url = "http://host:port/v1", got {self.base_url!r}'
            )
        if self.api_key_env is not None and not _ENV_NAME.fullmatch(self.api_key_env):
            # Never echo the value: it may be the key itself, pasted here by mistake.
            problems.append(
                "api_key_env: must be the NAME of an environment variable holding the key, not the key"
            )
        wrong = [code for code in self.languages if not is_language_code(code)]
        if wrong:
            problems.append(f'languages: expected ISO 639-1 codes like ["en", "de"], got {wrong!r}')
        if not all(self.stop):
            problems.append("stop: must be a list of non-empty strings")
        if self.candidate is not None and self.backend != "local":
            problems.append("candidate: only for the local backend; serve it as its own model instead")
        if not 0 < self.candidate_share < 1:
            problems.append(f"candidate_share: must be in (0, 1), got {self.candidate_share}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p: must be in (0, 1], got {self.top_p}")
        if not 0 < self.timeout_seconds <= 3600:
            problems.append(f"timeout_seconds: must be in (0, 3600], got {self.timeout_seconds}")
        return problems + out_of_range(
            self,
            {
                "max_new_tokens": (1, 8192),
                "temperature": (0, 5),
                "repetition_penalty": (0.5, 3),
                "max_input_tokens": (16, 1_000_000),
                "seed": (0, 2**31),
                "max_retries": (0, 20),
            },
        )

    @property
    def base_key(self) -> tuple[str, str]:
        return (self.base_model, self.quantization)

    def writes(self, language: str) -> bool:
        """Whether this model drafts tickets in ``language`` (unset ``languages``: every language)."""
        return not self.languages or language in self.languages

    @property
    def served_name(self) -> str:
        """The model id to request from an OpenAI-compatible server."""
        return self.remote_model or self.name


@dataclass(frozen=True)
class EngineSettings:
    """`[engine]`: how the local engine batches, per base model and per generate() call.

    Rows beyond the limits go into further calls. ``max_batch_tokens`` bounds rows × (longest
    prompt + most new tokens) in one call, i.e. the KV cache the call can grow to.
    ``max_wait_seconds`` is how long ``serve-models`` holds a request for others to join its batch.
    """

    max_batch_size: int = setting("drafts per generate() call", 32)
    max_batch_tokens: int = setting("rows × (longest prompt + max_new_tokens) in one call", 32768)
    max_wait_seconds: float = setting("serve-models: how long a request waits for others to join", 0.05)
    device: str | None = setting(
        '"cpu", "cuda" or "cuda:N"', None, shown_default="cuda if available, else cpu"
    )
    compile: CompileMode = setting(
        '"auto": on a GPU, each decoding step runs as compiled CUDA graphs (compiled once per batch '
        'and length bucket, the first drafts of a shape wait for it); "off": eager steps',
        "auto",
    )

    def __post_init__(self) -> None:
        check_section(self, "engine")

    def problems(self) -> list[str]:
        problems = out_of_range(
            self,
            {"max_batch_size": (1, 1024), "max_batch_tokens": (64, 10_000_000), "max_wait_seconds": (0, 60)},
        )
        if self.compile not in COMPILE_MODES:
            problems.append(f'compile: must be "auto" or "off", got {self.compile!r}')
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            problems.append(f'device: must be "cpu", "cuda" or "cuda:N", got {self.device!r}')
        return problems


@dataclass(frozen=True)
class DraftRequest:
    """One prompt for one model, with optional per-request overrides of the model's settings.

    The bot sends plain prompts (the model's configured settings apply); ``serve-models`` passes on
    the settings of an OpenAI request. ``ignore_eos`` generates exactly ``max_new_tokens`` tokens
    (benchmarks), like vLLM's parameter of that name.
    """

    model: str
    prompt: str
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    ignore_eos: bool = False

    def settings_for(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with this request's overrides; raises ValueError for an invalid value."""
        names = ("max_new_tokens", "temperature", "top_p", "repetition_penalty", "stop", "seed")
        overrides = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return replace(spec, **overrides) if overrides else spec


__all__ = ["BASE_ADAPTER", "DEFAULT_API_KEY_ENV", "DraftRequest", "EngineSettings", "ModelSpec"]


ADAPTER_POINTER = "LATEST"  # written by `draftdesk finetune train` next to its versioned adapters


def resolve_adapter_dir(path: str | Path) -> Path:
    """An adapter folder, or a model's adapters folder whose LATEST file names the version to use.

    So `adapter = "./adapters/llama2-7b-ft"` follows each retraining without editing the config.
    """
    folder = Path(path).expanduser()
    pointer = folder / ADAPTER_POINTER
    if not (folder / "adapter_config.json").is_file() and pointer.is_file():
        return folder / pointer.read_text(encoding="utf-8").strip()
    return folder
