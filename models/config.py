"""The `[[models]]` and `[engine]` sections: one ``ModelSpec`` per draft model, one ``EngineSettings``.

`draftdesk serve-models` on a GPU box reads only these (no Slack, no Zendesk); `bot/config.py`
reads them as part of the bot's configuration, `finetune` to find each model's base. The keys, their
defaults and their bounds are the fields of ``ModelSpec`` and ``EngineSettings`` (models/spec.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from core.config import ConfigError, build_section, local_or_hub, read_toml, toml_key, try_build_section
from core.prompt import STOP_SEQUENCES
from models.spec import EngineSettings, ModelSpec
from models.versions import candidate_path

# Keys of a `[[models]]` table that other packages read: `[models.finetune]` is finetune/'s.
OTHER_PACKAGES_KEYS = ("finetune",)
# Keys that only mean something for a model served elsewhere (`backend = "openai"`).
REMOTE_KEYS = tuple(
    toml_key(item)
    for item in fields(ModelSpec)
    if item.name in ("base_url", "remote_model", "api_key_env", "timeout_seconds", "max_retries", "tokenizer")
)


def parse_models(raw: Any, base_dir: Path, problems: list[str]) -> tuple[ModelSpec, ...]:
    """Every `[[models]]` table as a ModelSpec, local paths resolved against ``base_dir``."""
    if not raw:
        problems.append("[[models]]: missing: add at least one [[models]] table with name and base_model")
        return ()
    if not isinstance(raw, list):
        problems.append("[[models]]: must be an array of tables ([[models]])")
        return ()
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        prefix = f"models[{index}]"
        if not isinstance(table, Mapping):
            problems.append(f"[{prefix}] must be a table")
            continue
        own = _own_keys(table, prefix, problems)
        name = table.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{prefix}.name: duplicate model name {name!r}: names must be unique")
            seen.add(name)
        spec = try_build_section(ModelSpec, own, prefix, problems)
        if spec is not None:
            adapter = local_or_hub(spec.adapter, base_dir) if spec.adapter else None
            candidate = candidate_path(spec.candidate, adapter, base_dir) if spec.candidate else None
            specs.append(
                replace(
                    spec,
                    base_model=local_or_hub(spec.base_model, base_dir) if spec.base_model else "",
                    adapter=adapter,
                    candidate=candidate,
                )
            )
    return tuple(specs)


def _own_keys(table: Mapping[str, Any], prefix: str, problems: list[str]) -> dict[str, Any]:
    """The keys ModelSpec reads; the openai-only keys of another backend become problems."""
    own = {key: value for key, value in table.items() if key not in OTHER_PACKAGES_KEYS}
    # Default: the prompt format's turn markers, so a draft ends before a made-up next turn
    # ("\nCustomer: …"); `stop = []` turns that off.
    own.setdefault("stop", list(STOP_SEQUENCES))
    if own.get("backend", "local") != "openai":
        for key in REMOTE_KEYS:
            if key in own:
                problems.append(
                    f'{prefix}.{key}: only used with backend = "openai": remove it, or set backend = "openai"'
                )
                del own[key]
    return own


def parse_engine(raw: Any, problems: list[str]) -> EngineSettings:
    return build_section(EngineSettings, raw, "engine", problems)


def load_model_settings(path: Path) -> tuple[tuple[ModelSpec, ...], EngineSettings]:
    """Only `[[models]]` and `[engine]` (`draftdesk serve-models` on a GPU box needs no Slack)."""
    raw = read_toml(path)
    problems: list[str] = []
    models = parse_models(raw.get("models"), path.parent, problems)
    engine = parse_engine(raw.get("engine"), problems)
    if problems:
        raise ConfigError(problems)
    return models, engine
