"""Whether a local base-model folder holds a whole model, so a half-finished download is named as
one instead of failing deep inside transformers ("install sentencepiece", "couldn't connect").
Pure file checks: nothing is loaded."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)


def missing_base_files(folder: Path) -> list[str]:
    """What ``folder`` lacks to be loaded as a base model ([] when nothing): its config, its
    weights (every shard its index names), a tokenizer."""
    if not folder.is_dir():
        return ["the folder itself"]
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    missing.extend(_missing_weights(folder))
    has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES) or next(
        folder.glob("*.tiktoken"), None
    )
    if not has_tokenizer:
        missing.append(f"a tokenizer ({', '.join(TOKENIZER_FILES)} or *.tiktoken)")
    return missing


def _missing_weights(folder: Path) -> list[str]:
    """[] when one weight index has every shard it names (a download with ``--exclude "*.bin"``
    keeps the .bin index without its shards), or there are weights and no index."""
    incomplete: list[tuple[str, list[str], int]] = []
    for index in WEIGHT_INDEXES:
        if not (folder / index).is_file():
            continue
        try:
            weight_map = json.loads((folder / index).read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, ValueError):
            incomplete.append((index, [f"a readable {index}"], 0))
            continue
        shards = sorted({str(name) for name in weight_map.values()})
        absent = [name for name in shards if not (folder / name).is_file()]
        if not absent:
            return []
        incomplete.append((index, absent, len(shards)))
    if incomplete:
        index, absent, total = min(incomplete, key=lambda item: len(item[1]))
        if not total:
            return absent
        named = ", ".join(absent[:3]) + ("…" if len(absent) > 3 else "")
        return [f"{len(absent)} weight file(s) of {total} ({named})"]
    if any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        return []
    return ["weights (*.safetensors or *.bin)"]
