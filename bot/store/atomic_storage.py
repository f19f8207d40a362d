"""A TinyDB storage that never leaves a torn file behind.

TinyDB's stock JSONStorage truncates and rewrites the file in place, so a kill mid-write
leaves half a database. Here every write goes to a temporary file in the same folder, is
fsynced, and replaces the old file with one atomic rename (then the folder is fsynced so the
rename itself survives a power cut). Readers, including other processes such as
`draftdesk report`, always see either the old or the new complete file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from core.files import replace_atomically


class StoreDamaged(RuntimeError):
    """A store file that draftdesk did not write (not text, not JSON, not an object); the message
    says how to recover."""


def sweep_leftovers(folder: Path, name: str = "*") -> None:
    """Remove the temporary files of a writer killed mid-write (``.NAME.*.tmp``): never renamed,
    so never part of the store."""
    for leftover in folder.glob(f".{name}.*.tmp"):
        leftover.unlink(missing_ok=True)


class AtomicJSONStorage(Storage):
    """``sweep=False`` leaves the leftover sweep to the caller: a store with thousands of partition
    files sweeps each folder once when it opens, instead of listing the folder at every file open."""

    def __init__(self, path: str | Path, read_only: bool = False, sweep: bool = True) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if sweep:
                sweep_leftovers(self.path.parent, self.path.name)
        self._cache: dict[str, dict[str, Any]] | None = None

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._cache is None:
            self._cache = self._load()
        return self._cache

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError as exc:
            raise StoreDamaged(
                f"{self.path} is not a draftdesk store file (not text: {exc.reason}). Restore it from a "
                "backup (`draftdesk restore`) or move it away to start with an empty store."
            ) from None
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreDamaged(
                f"{self.path} is not valid JSON ({exc}); it was not written by draftdesk's atomic "
                "storage. Restore it from a backup (`draftdesk restore`) or move it away to start with an "
                "empty store."
            ) from exc
        if not isinstance(data, dict):
            raise StoreDamaged(f"{self.path} does not hold a draftdesk store (top level is not an object)")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise PermissionError(f"{self.path} was opened read-only")
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            replace_atomically(self.path, lambda handle: handle.write(payload))
        except BaseException:
            self._cache = None  # the old file is untouched; drop the cache so memory matches disk
            raise
        self._cache = data

    def close(self) -> None:
        self._cache = None
