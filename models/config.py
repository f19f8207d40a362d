"""The `[[models]]` and `[engine]` sections: one ``ModelSpec`` per draft model, one ``EngineSettings``.

`draftdesk serve-models` on a GPU box reads only these (no Slack, no Zendesk); `bot/config.py`
reads them as part of the bot's configuration, `finetune` to find each model's base.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core.config import ConfigError, TableReader, local_or_hub, read_toml
from core.prompt import STOP_SEQUENCES
from models.spec import BACKENDS, EngineSettings, ModelSpec

_MODEL_KEYS = {
    "finetune",
    "name",
    "base_model",
    "adapter",
    "quantization",
    "max_new_tokens",
    "temperature",
    "top_p",
    "repetition_penalty",
    "stop",
    "max_input_tokens",
    "seed",
    # where the model runs: "local" (this process) or "openai" (vLLM, `draftdesk serve-models`)
    "backend",
    "base_url",
    "model",
    "api_key_env",
    "timeout_seconds",
    "max_retries",
    "tokenizer",
}
_REMOTE_KEYS = ("base_url", "model", "api_key_env", "timeout_seconds", "max_retries", "tokenizer")


def parse_models(raw: Any, base_dir: Path, problems: list[str]) -> tuple[ModelSpec, ...]:
    if not raw:
        problems.append("[[models]]: missing: add at least one [[models]] table with name and base_model")
        return ()
    if not isinstance(raw, list):
        problems.append("[[models]]: must be an array of tables ([[models]])")
        return ()
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        r = TableReader(table, f"models[{index}]", problems)
        r.unknown_keys(_MODEL_KEYS)
        name = r.get("name", str, "", "a short model name")
        if not name:
            r.problem("name", 'missing: give each model a name, e.g. name = "llama2-7b-ft"')
        elif name in seen:
            r.problem("name", f"duplicate model name {name!r}: names must be unique")
        seen.add(name)
        backend = r.choice("backend", BACKENDS, "local")
        base = r.get("base_model", str, "", "a hub id or a local path")
        if not base and backend == "local":
            r.problem("base_model", 'missing: a hub id like "meta-llama/Llama-2-7b-hf" or a local path')
        remote = _parse_remote(r, backend)
        adapter = r.get("adapter", str, None, "a LoRA adapter directory") or None
        # Default: the prompt format's turn markers, so a draft ends before a made-up next turn
        # ("\nCustomer: …"); `stop = []` turns that off.
        stop = r.get("stop", list, list(STOP_SEQUENCES), 'a list of strings like ["\\nCustomer:"]')
        if not all(isinstance(s, str) and s for s in stop):
            r.problem("stop", "must be a list of non-empty strings")
            stop = []
        max_input = r.table.get("max_input_tokens")
        seed = r.table.get("seed")
        if not name or (not base and backend == "local") or remote is None:
            continue  # already reported; a spec needs both
        try:
            spec = ModelSpec(
                name=name,
                base_model=local_or_hub(base, base_dir) if base else "",
                adapter=local_or_hub(adapter, base_dir) if adapter else None,
                quantization=r.choice("quantization", ("nf4", "none"), "nf4"),  # type: ignore[arg-type]
                max_new_tokens=r.number("max_new_tokens", 256, minimum=1, maximum=8192, integer=True),
                temperature=float(r.number("temperature", 0.7, minimum=0, maximum=5, integer=False)),
                top_p=float(r.number("top_p", 0.9, minimum=0.01, maximum=1, integer=False)),
                repetition_penalty=float(
                    r.number("repetition_penalty", 1.1, minimum=0.5, maximum=3, integer=False)
                ),
                stop=tuple(stop),
                max_input_tokens=r.number("max_input_tokens", 0, minimum=16, maximum=1_000_000, integer=True)
                if max_input is not None
                else None,
                seed=r.number("seed", 0, minimum=0, maximum=2**31, integer=True)
                if seed is not None
                else None,
                backend=backend,  # type: ignore[arg-type]
                **remote,
            )
        except ValueError as exc:  # a combination the checks above missed: report, never raise
            problems.append(f"models[{index}]: {exc}")
            continue
        specs.append(spec)
    return tuple(specs)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse_remote(r: TableReader, backend: str) -> dict[str, Any] | None:
    """The `backend = "openai"` keys of one model, or None after reporting a problem."""
    if backend != "openai":
        for key in _REMOTE_KEYS:
            if key in r.table:
                r.problem(key, 'only used with backend = "openai": remove it, or set backend = "openai"')
        return {}
    before = len(r.problems)
    base_url = r.get("base_url", str, "", 'a URL like "http://gpu-box:8000/v1"')
    if not base_url.startswith(("http://", "https://")):
        r.problem("base_url", f'backend "openai" needs base_url = "http://host:port/v1", got {base_url!r}')
    api_key_env = r.get("api_key_env", str, None, "an environment variable name")
    if api_key_env is not None and not _ENV_NAME.fullmatch(api_key_env):
        # Never echo the value: it may be the key itself, pasted here by mistake.
        r.problem("api_key_env", "must be the NAME of an environment variable holding the key, not the key")
    remote = {
        "base_url": base_url,
        "remote_model": r.get("model", str, None, "the model id on the server") or None,
        "api_key_env": api_key_env,
        "timeout_seconds": float(r.number("timeout_seconds", 120, minimum=1, maximum=3600, integer=False)),
        "max_retries": r.number("max_retries", 3, minimum=0, maximum=20, integer=True),
        "tokenizer": r.get("tokenizer", str, None, "a tokenizer path or hub id") or None,
    }
    return None if len(r.problems) > before else remote


def parse_engine(r: TableReader) -> EngineSettings:
    r.unknown_keys({"max_batch_size", "max_batch_tokens", "max_wait_seconds", "device"})
    device = r.get("device", str, None, '"cuda", "cuda:1" or "cpu"') or None
    if device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        r.problem("device", f'must be "cpu", "cuda" or "cuda:N", got {device!r}')
        device = None
    return EngineSettings(
        max_batch_size=r.number("max_batch_size", 32, minimum=1, maximum=1024, integer=True),
        max_batch_tokens=r.number("max_batch_tokens", 32768, minimum=64, maximum=10_000_000, integer=True),
        max_wait_seconds=float(r.number("max_wait_seconds", 0.05, minimum=0, maximum=60, integer=False)),
        device=device,
    )


def load_model_settings(path: Path) -> tuple[tuple[ModelSpec, ...], EngineSettings]:
    """Only `[[models]]` and `[engine]` (`draftdesk serve-models` on a GPU box needs no Slack)."""
    raw = read_toml(path)
    problems: list[str] = []
    models = parse_models(raw.get("models"), path.parent, problems)
    engine = parse_engine(TableReader(raw.get("engine"), "engine", problems))
    if problems:
        raise ConfigError(problems)
    return models, engine
