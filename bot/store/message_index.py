"""The partitioned store's index of Slack messages: (channel, ts) → the draft the message shows.

A message's hour (its ``ts`` is a Unix time) names its file, ``messages/2026-03-02T09.json``; an
ordinary hour holds a few dozen messages. An hour with more than ``MESSAGES_PER_PART`` (a backlog
drafted within the hour) continues in ``messages/2026-03-02T09/<ts>.json``, each part holding the
messages from the ts in its name up to the next part's, at most ``MESSAGES_PER_PART`` of them. So a
write rewrites one part of bounded size whatever the hour held before, and a look-up reads one part
after listing a folder of that hour's parts (which exists only for a busy hour).

A message whose ts is later than every message of the hour's last part starts a new part when that
part is full (the usual case: Slack's ts grows with time); one that falls inside a full part splits
it in two at the middle. A split writes the new upper part first, then the lower part without those
messages: a kill between the two leaves the upper messages in both parts, and a look-up, which reads
only the part whose range covers the ts, finds them in the new one. Equal ts (two channels) are never
split apart.

Stores of 2026-11 kept one file per day (``messages/2026-03-02.json``): still read.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from bot.store.atomic_storage import AtomicJSONStorage, sweep_leftovers

MESSAGES_PER_PART = 200  # ~20 KB
KNOWN_HOURS = 512  # hours whose part lists the writer keeps in memory
_SLACK_TS = re.compile(r"^(\d+)\.(\d+)$")
Row = dict[str, Any]
TsKey = tuple[int, int]
FIRST: TsKey = (-1, -1)  # the hour file's range starts before every ts


def hour_of_ts(ts: str) -> str:
    """The UTC hour of a Slack ``ts`` (a Unix time), ``2025-01-06T13``; ``other`` for a ts that is
    not one."""
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H")
    except (ValueError, OverflowError, OSError):
        return "other"


def day_of_ts(ts: str) -> str:
    """The UTC day of a Slack ``ts``: the message index file of stores written before hourly files."""
    return hour_of_ts(ts).split("T")[0]


def ts_key(ts: str) -> TsKey | None:
    """A Slack ts in order (seconds, then the digits after the point as Slack writes six of them);
    None for a ts that is not one (such messages all stay in the ``other`` file)."""
    match = _SLACK_TS.match(ts)
    return (int(match.group(1)), int(match.group(2).ljust(6, "0"))) if match else None


class MessageIndex:
    """The index's reads and writes. ``open_part(name)`` gives the cached TinyDB of
    ``messages/NAME.json`` (NAME may be ``HOUR/TS``). The caller holds the store's lock."""

    def __init__(self, folder: Path, open_part: Callable[[str], TinyDB], read_only: bool) -> None:
        self.folder = folder
        self._open_part = open_part
        self._read_only = read_only
        self._hours: OrderedDict[str, list[tuple[TsKey, str]]] = OrderedDict()

    # ---- look-ups ---------------------------------------------------------------------------------

    def find(self, channel: str, ts: str) -> str | None:
        """The draft id of the message: one part of its hour, or its day's file in older stores."""
        hour = hour_of_ts(ts)
        for row in self._rows(self._covering(hour, ts)[1]):
            if row["ts"] == ts and row["channel"] == channel:
                return str(row["draft_id"])
        day = day_of_ts(ts)
        if (self.folder / f"{day}.json").exists():
            for row in self._rows(day):
                if row["ts"] == ts and row["channel"] == channel:
                    return str(row["draft_id"])
        return None

    def rows_since(self, hour: str) -> Iterator[Row]:
        """Every indexed message of the hours (and, in older stores, days) from ``hour`` on, read
        without filling the cache."""
        for path in sorted(self.folder.glob("*.json")):
            name = path.stem  # 2026-03-02T13 (an hour), or 2026-03-02 (a day, before hourly files)
            if name == "other" or name < hour[: len(name)]:
                continue
            paths = [path, *sorted((self.folder / name).glob("*.json"))] if "T" in name else [path]
            for part in paths:
                yield from (
                    (AtomicJSONStorage(part, read_only=True).read() or {}).get("messages") or {}
                ).values()

    # ---- writes -----------------------------------------------------------------------------------

    def add(self, channel: str, ts: str, draft_id: str) -> None:
        hour = hour_of_ts(ts)
        row = {"channel": channel, "ts": ts, "draft_id": draft_id}
        key = ts_key(ts)
        index, name = self._covering(hour, ts)
        rows = list(self._rows(name))
        if key is None or len(rows) < MESSAGES_PER_PART:
            self._write(name, [*rows, row])
            return
        parts = self._parts(hour)
        if index == len(parts) - 1 and all(_key(r) < key for r in rows):
            self._write(f"{hour}/{ts}", [row])  # the hour goes on in a new part
            parts.append((key, f"{hour}/{ts}"))
            return
        self._split(hour, name, sorted([*rows, row], key=_key))

    def add_many(self, rows: list[Row]) -> None:
        """Bulk import (migration, benchmarks): each hour's messages, with those already indexed,
        rewritten as full parts in ts order."""
        by_hour: dict[str, list[Row]] = {}
        for row in rows:
            by_hour.setdefault(hour_of_ts(row["ts"]), []).append(dict(row))
        for hour, new in by_hour.items():
            parts = self._parts(hour)
            held = [row for _, name in parts for row in self._rows(name)]
            everything = [*held, *new]
            if hour == "other":
                self._write(hour, everything)
                continue
            chunks = _chunks(sorted(everything, key=_key))
            names = [hour] + [f"{hour}/{chunk[0]['ts']}" for chunk in chunks[1:]]
            for name, chunk in reversed(list(zip(names, chunks, strict=True))):  # the hour file last
                self._write(name, chunk)
            for _, name in parts[1:]:
                if name not in names:
                    (self.folder / f"{name}.json").unlink(missing_ok=True)
            self._hours[hour] = [(FIRST, hour)] + [
                (_key(chunk[0]), n) for n, chunk in zip(names[1:], chunks[1:], strict=True)
            ]

    def _split(self, hour: str, name: str, ordered: list[Row]) -> None:
        cut = _middle(ordered)
        if cut is None:  # every message of the part has the same ts: nothing to split at
            self._write(name, ordered)
            return
        upper_name = f"{hour}/{ordered[cut]['ts']}"
        self._write(upper_name, ordered[cut:])
        self._write(name, ordered[:cut])
        parts = self._parts(hour)
        if upper_name not in (n for _, n in parts):
            parts.append((_key(ordered[cut]), upper_name))
            parts.sort()

    # ---- parts ------------------------------------------------------------------------------------

    def _parts(self, hour: str) -> list[tuple[TsKey, str]]:
        """The hour's parts, (first ts, name), in ts order; the hour file first."""
        known = self._hours.get(hour)
        if known is not None:
            self._hours.move_to_end(hour)
            return known
        folder = self.folder / hour
        parts = [(FIRST, hour)]
        if hour != "other" and folder.is_dir():
            if not self._read_only:
                sweep_leftovers(folder)
            for path in folder.glob("*.json"):
                key = ts_key(path.stem)
                if key is not None:
                    parts.append((key, f"{hour}/{path.stem}"))
            parts.sort()
        if not self._read_only:  # a reader lists again each time: the writer may be adding parts
            self._hours[hour] = parts
            if len(self._hours) > KNOWN_HOURS:
                self._hours.popitem(last=False)
        return parts

    def _covering(self, hour: str, ts: str) -> tuple[int, str]:
        """The part whose range holds ``ts``: the last one starting at or before it."""
        parts = self._parts(hour)
        key = ts_key(ts)
        if key is None:
            return 0, hour
        index = max(i for i, (start, _) in enumerate(parts) if start <= key)
        return index, parts[index][1]

    def _rows(self, name: str) -> list[Row]:
        storage = (
            AtomicJSONStorage(self.folder / f"{name}.json", read_only=True)
            if self._read_only
            else self._open_part(name).storage
        )
        return list(((storage.read() or {}).get("messages") or {}).values())

    def _write(self, name: str, rows: list[Row]) -> None:
        self._open_part(name).storage.write({"messages": {str(i): row for i, row in enumerate(rows, 1)}})


def _key(row: Row) -> TsKey:
    return ts_key(row["ts"]) or FIRST


def _middle(ordered: list[Row]) -> int | None:
    """Where to cut a ts-ordered list in two halves without parting equal ts; None if nowhere."""
    keys = [_key(row) for row in ordered]
    middle = len(keys) // 2
    for offset in range(len(keys)):
        for cut in (middle + offset, middle - offset):
            if 0 < cut < len(keys) and keys[cut - 1] < keys[cut]:
                return cut
    return None


def _chunks(ordered: list[Row]) -> list[list[Row]]:
    """Full parts of ts-ordered messages (equal ts kept together)."""
    chunks: list[list[Row]] = [[]]
    for row in ordered:
        current = chunks[-1]
        if len(current) >= MESSAGES_PER_PART and _key(current[-1]) < _key(row):
            chunks.append([row])
        else:
            current.append(row)
    return chunks
