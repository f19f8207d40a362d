"""Batch planning (rows per ``generate()`` call) and a request collector with a bounded wait.

``plan_batches`` splits the rows of one base into ``generate()`` calls within the configured
limits. ``RequestBatcher`` gathers requests that arrive one by one (HTTP requests to
``serve-models``) into batches: a request waits at most ``max_wait_seconds`` for others to join.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")


def batch_cost(prompt_tokens: Sequence[int], new_tokens: Sequence[int]) -> int:
    """Token slots one ``generate()`` call fills: rows × (longest prompt + most new tokens).

    With left padding every row is as long as the longest prompt, and the KV cache grows to that
    plus the most new tokens any row may take.
    """
    if not prompt_tokens:
        return 0
    return len(prompt_tokens) * (max(prompt_tokens) + max(new_tokens))


def plan_batches(
    prompt_tokens: Sequence[int], new_tokens: Sequence[int], max_size: int, max_tokens: int
) -> list[list[int]]:
    """Indices of the rows for each ``generate()`` call, within ``max_size`` rows and ``max_tokens``.

    Rows that fit in one call keep their order. Otherwise they are sorted by prompt length first,
    so rows of similar length share a call and little padding is wasted. A row that alone exceeds
    ``max_tokens`` still gets a call of its own.
    """
    n = len(prompt_tokens)
    if n == 0:
        return []
    if n <= max_size and batch_cost(prompt_tokens, new_tokens) <= max_tokens:
        return [list(range(n))]
    order = sorted(range(n), key=lambda i: prompt_tokens[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        candidate = [*current, i]
        cost = batch_cost([prompt_tokens[j] for j in candidate], [new_tokens[j] for j in candidate])
        if current and (len(candidate) > max_size or cost > max_tokens):
            batches.append(current)
            candidate = [i]
        current = candidate
    batches.append(current)
    return batches


class RequestBatcher(Generic[Req, Res]):
    """Runs requests submitted from many threads in batches, on one background thread.

    ``submit`` returns a Future. The batch starts when ``max_batch`` requests are waiting or
    ``max_wait_seconds`` after its first request arrived, whichever comes first; requests that
    arrive while a batch runs form the next one. ``run_batch`` gets the requests in arrival order
    and returns one result per request (or raises: every request of that batch gets the exception).
    """

    def __init__(
        self,
        run_batch: Callable[[list[Req]], Sequence[Res]],
        max_batch: int,
        max_wait_seconds: float,
        name: str = "request-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_seconds = max_wait_seconds
        self._queue: queue.Queue[tuple[Req, Future[Res]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self.batch_sizes: list[int] = []  # sizes of the batches run, for tests and logs
        self._thread.start()

    def submit(self, request: Req) -> Future[Res]:
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future[Res] = Future()
        self._queue.put((request, future))
        return future

    def close(self, timeout: float | None = None) -> None:
        """Finish the queued requests, then stop the thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    def _collect(self, first: tuple[Req, Future[Res]]) -> tuple[list[tuple[Req, Future[Res]]], bool]:
        items = [first]
        deadline = time.monotonic() + self.max_wait_seconds
        while len(items) < self.max_batch:
            try:
                item = self._queue.get_nowait()  # already waiting: take it without delay
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                return items, True
            items.append(item)
        return items, False

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            items, stopping = self._collect(first)
            live = [(req, fut) for req, fut in items if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                results = list(self._run_batch([req for req, _ in live]))
                if len(results) != len(live):
                    raise RuntimeError(f"batch of {len(live)} requests returned {len(results)} results")
            except Exception as exc:
                log.exception("a batch of %s request(s) failed", len(live))
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                fut.set_result(result)
