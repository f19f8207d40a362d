"""Which adapter version each draft comes from, and candidates served for a share of tickets.

``VersionedBackend`` wraps the bot's model runtime: every DraftResult it returns carries the
version of the adapter that wrote it (the ``adapters/NAME/VERSION`` folder that ``LATEST`` named
when the models were loaded; None for an untuned base) and the exact prompt. A model with
``candidate`` set is served by the candidate adapter instead for ``candidate_share`` of the tickets
(one draw per ticket and model), under the same name, so the drafts stay blind: only the recorded
version tells them apart. The candidate runs as a second adapter on the same loaded base.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.domain import DraftResult
from core.files import replace_atomically
from core.ports import DraftBackend
from models.spec import ADAPTER_POINTER, ModelSpec, resolve_adapter_dir

log = logging.getLogger(__name__)

CANDIDATE_SUFFIX = "@candidate"  # the engine's name for a model's candidate adapter; never shown
MANIFEST = "manifest.json"


def version_of(adapter: str | Path | None) -> str | None:
    """The version an adapter setting serves now: the manifest's ``version``, else the folder name."""
    if not adapter:
        return None
    folder = resolve_adapter_dir(adapter)
    try:
        recorded = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return str(recorded) if recorded else folder.name


def candidate_path(candidate: str, adapter: str | None, config_dir: Path) -> str:
    """``candidate = "VERSION"`` names a version in the model's adapters folder; anything else is a
    path (relative to the config file's folder) or a hub id."""
    if adapter and "/" not in candidate and (Path(adapter).expanduser() / candidate).is_dir():
        return str(Path(adapter).expanduser() / candidate)
    if candidate.startswith(("./", "../", "/", "~")):
        return str((config_dir / Path(candidate).expanduser()).resolve())
    return candidate


def serves_candidate(spec: ModelSpec) -> bool:
    """Whether the candidate is a different adapter from the current one (after a promotion the
    config may still name the version that is now current)."""
    if not spec.candidate:
        return False
    current = resolve_adapter_dir(spec.adapter).resolve() if spec.adapter else None
    return resolve_adapter_dir(spec.candidate).resolve() != current


def candidate_problem(spec: ModelSpec) -> str | None:
    """What is wrong with ``spec``'s candidate (no trained adapter there), naming the versions that
    exist; None when it is fine or there is none."""
    if not spec.candidate:
        return None
    folder = resolve_adapter_dir(spec.candidate)
    if (folder / "adapter_config.json").is_file():
        return None
    root = resolve_adapter_dir(spec.adapter).parent if spec.adapter else folder.parent
    versions = (
        sorted(p.name for p in root.iterdir() if (p / "adapter_config.json").is_file())
        if root.is_dir()
        else []
    )
    known = f"versions in {root}: {', '.join(versions)}" if versions else f"no trained version in {root}"
    return f"candidate {spec.candidate}: no adapter there ({known}); fix candidate in its [[models]] entry"


def candidate_spec(spec: ModelSpec) -> ModelSpec:
    """The candidate as a model of its own for the engine: same base and settings, its adapter."""
    return replace(spec, name=spec.name + CANDIDATE_SUFFIX, adapter=spec.candidate, candidate=None)


def runtime_specs(specs: Sequence[ModelSpec]) -> list[ModelSpec]:
    """The specs the runtime loads: each model, and right after it its candidate if it has one."""
    expanded = []
    for spec in specs:
        expanded.append(spec)
        if serves_candidate(spec):
            expanded.append(candidate_spec(spec))
        elif spec.candidate:
            log.warning(
                "model %r: candidate %s is the current adapter: not served twice", spec.name, spec.candidate
            )
    return expanded


class VersionedBackend:
    """A ``DraftBackend`` over one loaded with ``runtime_specs``: see the module doc."""

    def __init__(
        self, inner: DraftBackend, specs: Sequence[ModelSpec], rng: random.Random | None = None
    ) -> None:
        self.inner = inner
        self.rng = rng or random.SystemRandom()
        self.versions: dict[str, str | None] = {spec.name: version_of(spec.adapter) for spec in specs}
        self.candidates: dict[str, tuple[str, float]] = {}  # model -> (runtime name, share)
        for spec in specs:
            if serves_candidate(spec):
                runtime = spec.name + CANDIDATE_SUFFIX
                self.candidates[spec.name] = (runtime, spec.candidate_share)
                self.versions[runtime] = version_of(spec.candidate)
                log.info(
                    "model %r: candidate %s serves %.0f%% of tickets (current: %s)",
                    spec.name,
                    self.versions[runtime],
                    100 * spec.candidate_share,
                    self.versions[spec.name],
                )

    def count_tokens(self, model_name: str, text: str) -> int:
        return self.inner.count_tokens(model_name, text)

    def context_limit(self, model_name: str) -> int:
        return self.inner.context_limit(model_name)

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        routed = [{self._serve(model): prompt for model, prompt in prompts.items()} for prompts in batch]
        results = self.inner.generate_many(routed)
        return [
            [self._stamp(result, prompts) for result in ticket]
            for prompts, ticket in zip(batch, results, strict=True)
        ]

    def _serve(self, model: str) -> str:
        """The runtime name that drafts for ``model`` on this ticket: the candidate for its share."""
        candidate = self.candidates.get(model)
        if candidate is not None and self.rng.random() < candidate[1]:
            return candidate[0]
        return model

    def _stamp(self, result: DraftResult, prompts: Mapping[str, str]) -> DraftResult:
        name = result.model.removesuffix(CANDIDATE_SUFFIX) if result.model not in prompts else result.model
        return replace(
            result, model=name, model_version=self.versions.get(result.model), prompt=prompts.get(name)
        )

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


# ---- promotion: which version LATEST names, with the evidence in the manifests -------------------


class PromotionError(ValueError):
    """A promotion or rollback cannot be done; the message says why and what to do."""


def versions_folder(spec: ModelSpec) -> Path:
    """The model's folder of versions (the one holding LATEST), or PromotionError saying how to get one."""
    if not spec.adapter:
        raise PromotionError(
            f'model {spec.name!r} has no adapter folder: set adapter = "./adapters/{spec.name}" (the '
            "folder `draftdesk finetune train` writes versions and LATEST into) before promoting"
        )
    folder = Path(spec.adapter).expanduser()
    if not (folder / ADAPTER_POINTER).is_file():
        raise PromotionError(
            f"model {spec.name!r}: adapter {spec.adapter} is one version, not a folder of versions with a "
            f"LATEST file: point adapter at the folder `draftdesk finetune train` writes into"
        )
    return folder


def _write_json(path: Path, data: dict[str, Any]) -> None:
    payload = (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode("utf-8")
    replace_atomically(path, lambda handle: handle.write(payload))


def _set_latest(folder: Path, version: str) -> None:
    payload = (version + "\n").encode("utf-8")
    replace_atomically(folder / ADAPTER_POINTER, lambda handle: handle.write(payload))


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def promote_version(spec: ModelSpec, evidence: Mapping[str, Any], forced: bool, now: str) -> str:
    """Make the candidate the model's current version (LATEST), keeping the old one for rollback.

    The evidence goes into the candidate's manifest (``promotions``, newest last). Returns the
    version that was current before. The manifest is written before LATEST: a kill between the
    two leaves the old version current with the evidence already recorded, never the reverse.
    """
    folder = versions_folder(spec)
    if not spec.candidate or not serves_candidate(spec):
        raise PromotionError(f"model {spec.name!r} has no candidate other than its current adapter")
    candidate = resolve_adapter_dir(spec.candidate)
    if candidate.resolve().parent != folder.resolve():
        raise PromotionError(
            f"model {spec.name!r}: the candidate {candidate} is not in {folder}: copy it there "
            f'(cp -r {candidate} {folder}/) and set candidate = "{candidate.name}"'
        )
    previous = version_of(spec.adapter)
    manifest = _manifest(candidate)
    manifest.setdefault("version", candidate.name)
    promotions = list(manifest.get("promotions") or [])
    promotions.append({"at": now, "replaced": previous, "forced": forced, "evidence": dict(evidence)})
    manifest["promotions"] = promotions
    _write_json(candidate / MANIFEST, manifest)
    _set_latest(folder, candidate.name)
    return previous or ""


def rollback_version(spec: ModelSpec, now: str) -> tuple[str, str]:
    """Back to the version the current one replaced when it was promoted: (from, to)."""
    folder = versions_folder(spec)
    current = resolve_adapter_dir(spec.adapter or "")
    manifest = _manifest(current)
    promotions = manifest.get("promotions") or []
    previous = promotions[-1].get("replaced") if promotions else None
    if not previous or not (folder / previous / "adapter_config.json").is_file():
        raise PromotionError(
            f"model {spec.name!r}: the current version {current.name} was not promoted over another one "
            f"in {folder}: nothing to roll back to (write a VERSION into {folder / ADAPTER_POINTER} by hand)"
        )
    manifest.setdefault("rollbacks", []).append({"at": now, "to": previous})
    _write_json(current / MANIFEST, manifest)
    _set_latest(folder, previous)
    return current.name, previous


__all__ = [
    "CANDIDATE_SUFFIX",
    "PromotionError",
    "VersionedBackend",
    "candidate_path",
    "promote_version",
    "rollback_version",
    "runtime_specs",
    "version_of",
]
