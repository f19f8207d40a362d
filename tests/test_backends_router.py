"""The router over several backends, `build_backend`, and the batching helpers."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from core.domain import DraftResult
from models.batching import RequestBatcher, batch_cost, plan_batches
from models.engine import DraftEngine
from models.router import BackendRouter, build_backend
from models.spec import EngineSettings, ModelSpec
from models.versions import VersionedBackend


class Scripted:
    """A backend double: drafts name their model and backend; can fail whole or per model."""

    def __init__(self, label: str, fail: bool = False) -> None:
        self.label = label
        self.fail = fail
        self.batches: list[list[dict[str, str]]] = []

    def count_tokens(self, model_name: str, text: str) -> int:
        return len(text.split()) + (100 if self.label == "remote" else 0)

    def context_limit(self, model_name: str) -> int:
        return 1000 if self.label == "remote" else 500

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        self.batches.append([dict(p) for p in batch])
        if self.fail:
            raise ConnectionError("server gone")
        # Deliberately not in spec order: the router must put results in spec order.
        return [
            [DraftResult(m, f"{self.label}:{m}:{p}") for m, p in reversed(prompts.items())]
            for prompts in batch
        ]


SPECS = [
    ModelSpec("llama-ft", "/m/llama", "/a/llama"),
    ModelSpec("gptj-ft", backend="openai", base_url="http://gpu:8000/v1"),
    ModelSpec("llama", "/m/llama"),
]


def test_router_sends_each_model_to_its_backend_and_keeps_spec_order() -> None:
    local, remote = Scripted("local"), Scripted("remote")
    router = BackendRouter(SPECS, {"llama-ft": local, "gptj-ft": remote, "llama": local})
    try:
        results = router.generate_many(
            [{"llama": "p1", "gptj-ft": "p1", "llama-ft": "p1"}, {"gptj-ft": "p2"}]
        )
        assert [[r.text for r in t] for t in results] == [
            ["local:llama-ft:p1", "remote:gptj-ft:p1", "local:llama:p1"],
            ["remote:gptj-ft:p2"],
        ]
        # Each backend got one call with all of its drafts; a ticket without its models is empty.
        assert local.batches == [[{"llama": "p1", "llama-ft": "p1"}, {}]]
        assert remote.batches == [[{"gptj-ft": "p1"}, {"gptj-ft": "p2"}]]
        assert router.count_tokens("gptj-ft", "a b") == 102 and router.count_tokens("llama", "a b") == 2
        assert router.context_limit("gptj-ft") == 1000 and router.context_limit("llama-ft") == 500
        with pytest.raises(KeyError, match="unknown model"):
            router.generate({"gpt-4": "hi"})
    finally:
        router.close()


def test_a_failing_backend_fails_only_its_drafts() -> None:
    local, remote = Scripted("local"), Scripted("remote", fail=True)
    router = BackendRouter(SPECS, {"llama-ft": local, "gptj-ft": remote, "llama": local})
    try:
        (results,) = router.generate_many([{"llama-ft": "p", "gptj-ft": "p", "llama": "p"}])
    finally:
        router.close()
    assert [r.model for r in results] == ["llama-ft", "gptj-ft", "llama"]
    assert results[0].ok and results[2].ok
    assert results[1].text is None and "ConnectionError: server gone" in (results[1].error or "")


def test_router_needs_a_backend_per_model() -> None:
    with pytest.raises(ValueError, match="no backend"):
        BackendRouter(SPECS, {"llama-ft": Scripted("local")})


def test_build_backend_picks_engine_or_router(demo_models: dict[str, Path]) -> None:
    llama = str(demo_models["llama_base"])
    local_only = build_backend([ModelSpec("llama", llama)], EngineSettings(max_batch_size=4), load=False)
    assert isinstance(local_only, VersionedBackend)  # every draft records its adapter version
    assert isinstance(local_only.inner, DraftEngine)
    assert local_only.inner.settings.max_batch_size == 4
    assert local_only.inner.base_loads == 0  # load=False: nothing loaded yet
    mixed = build_backend([ModelSpec("llama", llama, max_new_tokens=5), SPECS[1]], env={}, load=False)
    try:
        assert isinstance(mixed.inner, BackendRouter)
        assert isinstance(mixed.inner.backend_for("llama"), DraftEngine)
        assert type(mixed.inner.backend_for("gptj-ft")).__name__ == "OpenAIBackend"
        assert mixed.context_limit("llama") == 512 - 5  # the local engine answers for its models
    finally:
        mixed.close()


def test_engine_refuses_remote_specs() -> None:
    with pytest.raises(ValueError, match="local models only"):
        DraftEngine(SPECS)


# ---------------------------------------------------------------------- batching helpers


def test_plan_keeps_order_when_everything_fits() -> None:
    assert plan_batches([5, 9, 7], [10, 10, 10], max_size=8, max_tokens=1000) == [[0, 1, 2]]
    assert plan_batches([], [], max_size=8, max_tokens=1000) == []


def test_plan_respects_size_and_token_budget() -> None:
    lengths = [100, 10, 90, 12, 95, 11]
    new = [20] * 6
    plan = plan_batches(lengths, new, max_size=2, max_tokens=10_000)
    assert plan == [[1, 5], [3, 2], [4, 0]]  # sorted by length: similar lengths share a call
    for chunk in plan_batches(lengths, new, max_size=6, max_tokens=250):
        assert batch_cost([lengths[i] for i in chunk], [new[i] for i in chunk]) <= 250
    # A row that alone is over the budget still gets its own call.
    assert plan_batches([500, 5], [20, 20], max_size=8, max_tokens=100) == [[1], [0]]
    assert sorted(i for chunk in plan_batches(lengths, new, 3, 300) for i in chunk) == list(range(6))


def test_batch_cost_counts_padding_and_new_tokens() -> None:
    assert batch_cost([10, 30], [5, 8]) == 2 * (30 + 8)


def test_batcher_gathers_concurrent_requests() -> None:
    gate = threading.Event()
    seen: list[list[int]] = []

    def run(batch: list[int]) -> list[int]:
        gate.wait(10)
        seen.append(batch)
        return [x * 10 for x in batch]

    batcher: RequestBatcher[int, int] = RequestBatcher(run, max_batch=4, max_wait_seconds=5.0)
    try:
        first = batcher.submit(0)  # a full batch of 4 starts at once, without the 5 s wait
        rest = [batcher.submit(i) for i in (1, 2, 3)]
        gate.set()
        assert [f.result(10) for f in [first, *rest]] == [0, 10, 20, 30]
        assert seen == [[0, 1, 2, 3]]
    finally:
        batcher.close(10)


def test_batcher_does_not_hold_a_lone_request_for_a_full_batch() -> None:
    batcher: RequestBatcher[str, str] = RequestBatcher(lambda b: [s.upper() for s in b], 100, 0.01)
    try:
        assert batcher.submit("a").result(10) == "A"
        assert batcher.batch_sizes == [1]
    finally:
        batcher.close(10)


def test_batcher_failure_reaches_every_request_of_the_batch() -> None:
    def boom(batch: list[int]) -> list[int]:
        raise RuntimeError("engine died")

    batcher: RequestBatcher[int, int] = RequestBatcher(boom, 2, 1.0)
    try:
        futures = [batcher.submit(1), batcher.submit(2)]
        for future in futures:
            with pytest.raises(RuntimeError, match="engine died"):
                future.result(10)
        assert batcher.submit(3) is not None  # the batcher keeps going
    finally:
        batcher.close(10)
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(4)
