"""Every draft knows its adapter version and prompt; a candidate drafts for its share of tickets, blind."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from bot.config import WorkerSettings
from bot.drafting.worker import TicketProcessor, Worker
from bot.slack.listeners import DraftActions
from bot.store.memory import MemoryStore
from core.config import ConfigError
from models.config import load_model_settings
from models.router import build_backend
from models.spec import ModelSpec
from models.versions import CANDIDATE_SUFFIX, VersionedBackend, runtime_specs, version_of
from tests.recording_poster import RecordingPoster
from tests.test_worker import ScriptedBackend, Tickets, ticket


def versions(root: Path, model: str, *names: str, latest: str, source: Path | None = None) -> Path:
    """``root/model/NAME`` adapter folders with manifests, and LATEST naming ``latest``."""
    folder = root / model
    for name in names:
        if source is not None:
            shutil.copytree(source, folder / name)
        else:
            (folder / name).mkdir(parents=True)
            (folder / name / "adapter_config.json").write_text("{}")
        (folder / name / "manifest.json").write_text(json.dumps({"version": name, "method": "dpo"}))
    (folder / "LATEST").write_text(latest + "\n")
    return folder


def test_every_draft_records_its_adapter_version_and_the_exact_prompt_and_votes_carry_it(tmp_path):
    adapters = versions(tmp_path, "llama2-7b-ft", "20260101-sft", "20260108-dpo", latest="20260108-dpo")
    specs = [ModelSpec("llama2-7b-ft", "base", adapter=str(adapters)), ModelSpec("llama2-7b", "base")]
    inner = ScriptedBackend()
    store, slack, tickets = MemoryStore(), RecordingPoster(), Tickets()
    backend = VersionedBackend(inner, specs)
    processor = TicketProcessor(store, tickets, slack, backend, [s.name for s in specs], "C1")
    worker = Worker(store, processor, WorkerSettings(retry_base_seconds=0))
    tickets.tickets[1] = ticket()
    store.enqueue(1, "webhook")
    assert worker.run_until_idle() == 1

    drafts = {d.model: d for d in store.drafts_for_ticket(1)}
    assert drafts["llama2-7b-ft"].model_version == "20260108-dpo"  # what LATEST named
    assert drafts["llama2-7b"].model_version is None  # the untuned base
    for model, draft in drafts.items():
        assert draft.prompt == inner.calls[0][model] and draft.prompt.endswith("Agent:")
        assert draft.comment_id == 10  # the customer message the round answers
    DraftActions(store, slack).vote(drafts["llama2-7b-ft"].id, "U1", 5, "button")
    assert [v.model_version for v in store.votes()] == ["20260108-dpo"]


def test_a_candidate_drafts_for_its_share_of_tickets_under_the_models_name(tmp_path):
    adapters = versions(tmp_path, "ft", "v1", "v2", latest="v1")
    spec = ModelSpec(
        "ft", "base", adapter=str(adapters), candidate=str(adapters / "v2"), candidate_share=0.25
    )
    assert [s.name for s in runtime_specs([spec])] == ["ft", "ft" + CANDIDATE_SUFFIX]
    inner = ScriptedBackend()
    backend = VersionedBackend(inner, [spec, ModelSpec("base", "base")], rng=random.Random(7))
    results = backend.generate_many([{"ft": f"ticket {i}", "base": f"ticket {i}"} for i in range(400)])

    assert {r.model for ticket in results for r in ticket} == {"ft", "base"}  # blind: one name
    served = [next(r for r in ticket if r.model == "ft") for ticket in results]
    by_candidate = [r for r in served if r.model_version == "v2"]
    assert 70 <= len(by_candidate) <= 130  # 25% of 400, within about 3 standard deviations
    assert {r.model_version for r in served} == {"v1", "v2"}
    assert all(
        r.text == f"Reply from ft{CANDIDATE_SUFFIX}. Thanks!" for r in by_candidate
    )  # the candidate wrote it
    assert [r.prompt for r in served] == [f"ticket {i}" for i in range(400)]


def test_a_candidate_that_is_already_current_is_not_served_twice(tmp_path):
    adapters = versions(tmp_path, "ft", "v1", "v2", latest="v2")  # promoted, the config not yet edited
    spec = ModelSpec("ft", "base", adapter=str(adapters), candidate=str(adapters / "v2"))
    assert [s.name for s in runtime_specs([spec])] == ["ft"]
    backend = VersionedBackend(ScriptedBackend(), [spec], rng=random.Random(1))
    assert {r.model_version for [r] in backend.generate_many([{"ft": "p"}] * 20)} == {"v2"}


def test_the_config_takes_a_version_id_or_a_path_as_candidate(tmp_path):
    adapters = versions(tmp_path, "ft", "v1", "v2", latest="v1")
    elsewhere = versions(tmp_path / "trials", "ft", "exp", latest="exp") / "exp"
    config = tmp_path / "config.toml"
    config.write_text(
        """
[[models]]
name = "ft"
base_model = "base"
adapter = "./ft"
candidate = "v2"
candidate_share = 0.3

[[models]]
name = "other"
base_model = "base"
adapter = "./ft"
candidate = "./trials/ft/exp"
"""
    )
    ft, other = load_model_settings(config)[0]
    assert Path(ft.candidate) == adapters / "v2" and ft.candidate_share == 0.3
    assert Path(other.candidate) == elsewhere.resolve() and version_of(other.candidate) == "exp"
    config.write_text(
        config.read_text().replace("candidate_share = 0.3", "candidate_share = 1.5")
        + '\n[[models]]\nname = "remote"\nbackend = "openai"\nbase_url = "http://x/v1"\ncandidate = "v2"\n'
    )
    with pytest.raises(ConfigError) as problems:
        load_model_settings(config)
    text = "\n".join(problems.value.problems)
    assert "candidate_share: must be in (0, 1), got 1.5" in text
    assert "candidate: only for the local backend" in text


def test_the_engine_serves_current_and_candidate_adapters_on_one_loaded_base(demo_models, tmp_path):
    adapters = versions(tmp_path, "llama-ft", "v1", "v2", latest="v1", source=demo_models["llama_adapter"])
    spec = ModelSpec(
        "llama-ft",
        str(demo_models["llama_base"]),
        adapter=str(adapters),
        candidate=str(adapters / "v2"),
        max_new_tokens=3,
        temperature=0.0,
    )
    backend = build_backend([spec])
    try:
        assert isinstance(backend, VersionedBackend)
        backend.rng = random.Random(3)
        results = backend.generate_many(
            [{"llama-ft": f"Customer: question {i}\n\nAgent:"} for i in range(12)]
        )
        assert {r.model for [r] in results} == {"llama-ft"} and all(r.ok for [r] in results)
        assert {r.model_version for [r] in results} == {"v1", "v2"}
        assert backend.inner.base_loads == 1  # one base in memory, two adapters on it
    finally:
        backend.close()
