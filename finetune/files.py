"""Small file helpers: atomic writes (a killed run never leaves half a file), JSON Lines, hashes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from core.files import replace_atomically


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = text.encode("utf-8")
    replace_atomically(path, lambda handle: handle.write(payload))


def dumps(data: Any) -> str:
    """Stable JSON: sorted keys, UTF-8 kept readable."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)


def write_json(path: Path, data: Any) -> None:
    write_text(path, dumps(data) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_jsonl(path: Path, rows: Iterable[Any]) -> int:
    lines = [json.dumps(row, ensure_ascii=False, sort_keys=True) for row in rows]
    write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    for _number, row in numbered_jsonl(path):
        yield row


def numbered_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed line) of every non-blank line; a bad line raises ValueError naming it."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: not valid JSON ({exc})") from exc


def files_hash(paths: Iterable[Path]) -> str:
    """SHA-256 over the names and bytes of ``paths`` (in the order given)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
