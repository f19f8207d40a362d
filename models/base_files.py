"""Whether a local base-model folder holds a whole model, so a half-finished download is named as
one instead of failing deep inside transformers ("install sentencepiece", "couldn't connect").
Pure file checks: nothing is loaded."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def missing_base_files(folder: Path) -> list[str]:
    """What ``folder`` lacks to be loaded as a base model ([] when nothing): its config, its
    weights (every shard its index names), a tokenizer."""
    if not folder.is_dir():
        return ["the folder itself"]
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    shards: set[str] = set()
    for index in WEIGHT_INDEXES:
        if (folder / index).is_file():
            try:
                weight_map = json.loads((folder / index).read_text(encoding="utf-8")).get("weight_map", {})
            except (OSError, ValueError):
                missing.append(f"a readable {index}")
                continue
            shards.update(str(name) for name in weight_map.values())
    absent = sorted(name for name in shards if not (folder / name).is_file())
    if absent:
        missing.append(f"{len(absent)} weight file(s) of {len(shards)} ({', '.join(absent[:3])}…)")
    elif not shards and not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or *.bin)")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"a tokenizer ({', '.join(TOKENIZER_FILES)})")
    return missing
