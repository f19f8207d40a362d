"""The draft engine on tiny LLaMA- and GPT-J-shaped models: real NF4 + LoRA code path on the CPU."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from transformers import AutoTokenizer

from core.domain import Comment, DraftResult, Ticket
from core.prompt import STOP_SEQUENCES, build_prompt
from models import engine as engine_module
from models.config import parse_models
from models.engine import DraftEngine, ModelLoadError, ModelSpec
from models.sampling import RowSampler
from models.spec import DraftRequest, EngineSettings
from models.tiny import build_demo_models

MAX_NEW = 10
PROMPT = "Customer: I can't log in to my account since this morning.\n\nAgent:"


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


@pytest.fixture(scope="module")
def paths(offline: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_demo_models(tmp_path_factory.mktemp("tiny-models"))


def study_specs(paths: dict[str, Path], **settings: object) -> list[ModelSpec]:
    """The study's three models: LLaMa fine-tuned, GPT-J fine-tuned, LLaMa untuned."""
    llama, gptj = str(paths["llama_base"]), str(paths["gptj_base"])
    return [
        ModelSpec("llama-ft", llama, str(paths["llama_adapter"]), **settings),  # type: ignore[arg-type]
        ModelSpec("gptj-ft", gptj, str(paths["gptj_adapter"]), **settings),  # type: ignore[arg-type]
        ModelSpec("llama", llama, **settings),  # type: ignore[arg-type]
    ]


@dataclass
class Study:
    engine: DraftEngine
    from_pretrained_calls: list[str]


@pytest.fixture(scope="module")
def study(paths: dict[str, Path]) -> Iterator[Study]:
    calls: list[str] = []
    original = engine_module.AutoModelForCausalLM.from_pretrained

    def counting(path: str, *args: object, **kwargs: object) -> object:
        calls.append(str(path))
        return original(path, *args, **kwargs)

    engine = DraftEngine(study_specs(paths, max_new_tokens=MAX_NEW, temperature=0.0), device="cpu")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_module.AutoModelForCausalLM, "from_pretrained", counting)
        engine.load()
    yield Study(engine, calls)
    engine.close()


def test_nf4_gives_bitsandbytes_4bit_layers_on_cpu(study: Study, paths: dict[str, Path]) -> None:
    import bitsandbytes as bnb

    base = study.engine._bases[(str(paths["gptj_base"]), "nf4")]
    quantized = [m for m in base.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized, "no bitsandbytes Linear4bit layer: the model was not quantized"
    assert all(m.weight.quant_state.quant_type == "nf4" for m in quantized)
    assert all(m.weight.device.type == "cpu" for m in quantized)


def test_study_setup_loads_each_base_once(study: Study, paths: dict[str, Path]) -> None:
    assert sorted(study.from_pretrained_calls) == sorted([str(paths["llama_base"]), str(paths["gptj_base"])])
    assert study.engine.base_loads == 2
    assert len(study.engine.loaded_bases) == 2
    study.engine.load()  # idempotent
    assert study.engine.base_loads == 2


def test_generate_returns_one_draft_per_model_in_spec_order(study: Study) -> None:
    prompts = {"llama": PROMPT, "gptj-ft": PROMPT, "llama-ft": PROMPT}  # not in spec order
    results = study.engine.generate(prompts)
    assert [r.model for r in results] == ["llama-ft", "gptj-ft", "llama"]
    for result in results:
        assert result.ok, result
        assert result.text and result.text == result.text.strip()
        assert result.prompt_tokens == study.engine.count_tokens(result.model, PROMPT)
        assert 0 < result.completion_tokens <= MAX_NEW
        assert not any(token in result.text for token in ("<s>", "</s>", "<pad>"))
        assert "log in to my account" not in result.text  # no prompt echo


def test_adapter_changes_greedy_output(study: Study) -> None:
    tuned, untuned = study.engine.generate({"llama-ft": PROMPT, "llama": PROMPT})
    assert tuned.ok and untuned.ok
    assert tuned.text != untuned.text


def test_mixed_batch_matches_each_model_alone(study: Study) -> None:
    # Different prompt lengths, so the batch is left-padded; two tickets, so one base gets 4 rows.
    batch = [
        {"llama-ft": PROMPT, "gptj-ft": PROMPT, "llama": "Customer: Where is my parcel?\n\nAgent:"},
        {"llama-ft": "Customer: refund\n\nAgent:", "llama": PROMPT + " Hello"},
    ]
    together = study.engine.generate_many(batch)
    for prompts, results in zip(batch, together, strict=True):
        assert [r.model for r in results] == [n for n in ("llama-ft", "gptj-ft", "llama") if n in prompts]
        for result in results:
            alone = study.engine.generate({result.model: prompts[result.model]})[0]
            # Exact: the rows agree token for token (float noise from padding did not flip a choice).
            assert (result.text, result.completion_tokens) == (alone.text, alone.completion_tokens)


def test_failing_model_gives_error_and_others_succeed(
    study: Study, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = study.engine._bases[(str(paths["llama_base"]), "nf4")].model
    real_generate = model.generate
    attempts: list[list[str]] = []

    def generate(*args: object, **kwargs: object) -> object:
        names = list(kwargs.get("adapter_names", []))  # type: ignore[call-overload]
        attempts.append(names)
        if "__base__" in names:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate)
    results = study.engine.generate({"llama-ft": PROMPT, "gptj-ft": PROMPT, "llama": PROMPT})
    by_model = {r.model: r for r in results}
    assert by_model["llama-ft"].ok and by_model["gptj-ft"].ok
    assert by_model["llama"].text is None
    assert "out of memory" in (by_model["llama"].error or "")
    # The mixed batch failed, then each row was retried alone.
    assert attempts == [["llama-ft", "__base__"], ["llama-ft"], ["__base__"]]


def test_per_model_settings_seeds_and_stop_strings_in_one_batch(study: Study, paths: dict[str, Path]) -> None:
    greedy = study.engine.generate({"llama-ft": PROMPT})[0]
    assert greedy.text
    # A stop string taken from the middle of the greedy draft must end the draft there.
    words = [m.group() for m in re.finditer(r"[A-Za-z]{2,}", greedy.text)]
    stop = next(w for w in words if greedy.text[: greedy.text.index(w)].strip())
    base_spec = study.engine._by_name["llama-ft"]
    engine = DraftEngine(
        [
            replace(base_spec, name="stopped", stop=(stop,)),
            replace(base_spec, name="short", max_new_tokens=3),
            replace(base_spec, name="hot", temperature=1.5, top_p=0.95, seed=7),
            replace(base_spec, name="hot-untuned", adapter=None, temperature=1.5, seed=7),
        ],
        device="cpu",
    )
    try:
        first = engine.generate({name: PROMPT for name in ("stopped", "short", "hot", "hot-untuned")})
        second = engine.generate({name: PROMPT for name in ("stopped", "short", "hot", "hot-untuned")})
        stopped, short, hot, _ = first
        assert engine.base_loads == 1  # four models, one base, one copy of the shared adapter
        assert stopped.text == greedy.text[: greedy.text.index(stop)].strip()
        assert stopped.completion_tokens < greedy.completion_tokens  # generation stopped early
        assert short.completion_tokens <= 3
        assert hot.ok and hot.text != greedy.text  # sampled, not greedy
        assert [r.text for r in first] == [r.text for r in second]  # seeded: reproducible
    finally:
        engine.close()


def test_prompt_builder_and_engine_together(study: Study) -> None:
    body = "My parcel has not arrived and the tracking page shows nothing. " * 200
    ticket = Ticket(
        id=1,
        subject="Where is my parcel?",
        status="new",
        requester_id=5,
        requester_name="Maria Lopez",
        created_at=datetime(2024, 5, 1, tzinfo=UTC),
        url="https://example.zendesk.com/agent/tickets/1",
        comments=(Comment(1, 5, body, True, datetime(2024, 5, 1, tzinfo=UTC), True),),
    )
    name = "gptj-ft"
    limit = study.engine.context_limit(name)
    assert limit == 512 - MAX_NEW  # n_positions of the tiny GPT-J minus max_new_tokens
    prompt = build_prompt(ticket, lambda text: study.engine.count_tokens(name, text), limit)
    assert study.engine.count_tokens(name, prompt) <= limit
    (result,) = study.engine.generate({name: prompt})
    assert result.ok, result
    assert result.prompt_tokens <= limit


def test_prompt_over_the_limit_is_an_error_result(study: Study) -> None:
    too_long = "refund " * 2000
    results = study.engine.generate({"llama": too_long, "llama-ft": PROMPT})
    assert results[0].ok
    assert results[1].text is None and "over the limit" in (results[1].error or "")


def test_missing_base_path_names_the_model(paths: dict[str, Path], tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-model")
    engine = DraftEngine([ModelSpec("llama-ft", missing, str(paths["llama_adapter"]))], device="cpu")
    with pytest.raises(ModelLoadError, match=r"llama-ft.*no-such-model.*not found: set base_model"):
        engine.load()


def test_a_half_downloaded_base_is_named_as_one(paths: dict[str, Path], tmp_path: Path) -> None:
    """Without its tokenizer files transformers would say "install sentencepiece"."""
    half = tmp_path / "half-llama"
    half.mkdir()
    for name in ("config.json", "model.safetensors"):
        (half / name).write_bytes((paths["llama_base"] / name).read_bytes())
    engine = DraftEngine([ModelSpec("llama", str(half))], device="cpu")
    with pytest.raises(ModelLoadError, match=r"'llama'.*incomplete: it lacks a tokenizer.*hf download"):
        engine.load()


def test_broken_model_spares_the_others(paths: dict[str, Path], tmp_path: Path) -> None:
    engine = DraftEngine(
        [
            ModelSpec("gptj-ft", str(paths["gptj_base"]), str(tmp_path / "no-adapter"), temperature=0),
            ModelSpec("llama", str(paths["llama_base"]), max_new_tokens=4, temperature=0),
            ModelSpec("hub", "someone/not-downloaded-7b", temperature=0),
        ],
        device="cpu",
    )
    try:
        gptj, llama, hub = engine.generate({"gptj-ft": PROMPT, "llama": PROMPT, "hub": PROMPT})
    finally:
        engine.close()
    assert llama.ok
    assert isinstance(gptj, DraftResult) and gptj.text is None
    assert "'gptj-ft'" in (gptj.error or "") and "no-adapter" in (gptj.error or "")
    assert "'hub'" in (hub.error or "") and "set base_model" in (hub.error or "")


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="top_p"):
        ModelSpec("x", "base", top_p=0)
    with pytest.raises(ValueError, match="__base__"):
        ModelSpec("__base__", "base")
    with pytest.raises(ValueError, match="unique"):
        DraftEngine([ModelSpec("x", "a"), ModelSpec("x", "b")])


SCRIPTED = " Sure, I can reset it for you.\nCustomer: Thanks, that worked!\nAgent: Glad to hear it."


class ScriptedSampler(RowSampler):
    """Greedy decoding forced onto ``SCRIPTED``'s tokens, then eos: a model that runs on into a turn."""

    script: ClassVar[tuple[int, ...]] = ()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = super().__call__(input_ids, scores)
        if not hasattr(self, "prompt_length"):
            self.prompt_length = input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        token = self.script[step] if step < len(self.script) else min(self.eos_ids)
        return torch.full_like(out, -math.inf).index_fill(1, torch.tensor([token]), 0.0)


def test_a_configured_draft_ends_before_a_made_up_customer_turn(
    paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From ``[[models]]`` to the draft: without a ``stop`` key a model gets the prompt format's turn
    markers, and the engine cuts its draft there; ``stop = []`` lets the draft run on."""
    base = str(paths["llama_base"])
    tables = [
        {"name": "default", "base_model": base, "temperature": 0, "max_new_tokens": 60},
        {"name": "no-stop", "base_model": base, "temperature": 0, "max_new_tokens": 60, "stop": []},
    ]
    problems: list[str] = []
    default, no_stop = parse_models(tables, paths["llama_base"].parent, problems)
    assert not problems
    assert default.stop == STOP_SEQUENCES == ("\nCustomer:", "\nAgent:")
    assert no_stop.stop == ()

    tokenizer = AutoTokenizer.from_pretrained(base)
    script = tokenizer(SCRIPTED, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(script) == SCRIPTED
    monkeypatch.setattr(ScriptedSampler, "script", tuple(script))
    monkeypatch.setattr(engine_module, "RowSampler", ScriptedSampler)
    engine = DraftEngine([default, no_stop], device="cpu")
    try:
        stopped, ran_on = engine.generate({"default": PROMPT, "no-stop": PROMPT})
    finally:
        engine.close()
    assert stopped.text == "Sure, I can reset it for you."
    # Generation itself stopped at the stop string, a few tokens after it, not at max_new_tokens.
    assert stopped.completion_tokens < len(script)
    assert ran_on.text == SCRIPTED.strip() and "Customer:" in ran_on.text
    assert ran_on.completion_tokens == len(script)


# ---------------------------------------------------------------------- batching and retries


LLAMA_NAMES = ("llama-ft", "llama")


def queued(n: int) -> list[dict[str, str]]:
    """``n`` tickets, each with a different prompt, for the study's three models."""
    return [
        {name: f"Customer: order {i} has not arrived, it is {'very ' * i}late.\n\nAgent:" for name in NAMES}
        for i in range(n)
    ]


NAMES = ("llama-ft", "gptj-ft", "llama")


def texts(results: list[list[DraftResult]]) -> list[list[tuple[str, str | None, int]]]:
    return [[(r.model, r.text, r.completion_tokens) for r in ticket] for ticket in results]


def test_queued_tickets_share_batches_within_max_batch_size(
    study: Study, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = queued(4)
    alone = [study.engine.generate(prompts) for prompts in batch]
    monkeypatch.setattr(study.engine, "settings", EngineSettings(max_batch_size=3))
    study.engine.stats.batch_sizes.clear()
    together = study.engine.generate_many(batch)
    # llama base: 4 tickets x 2 models = 8 rows -> 3 + 3 + 2; gptj base: 4 rows -> 3 + 1.
    assert study.engine.stats.batch_sizes == [3, 3, 2, 3, 1]
    assert texts(together) == texts(alone)


def test_token_budget_limits_rows_per_call(study: Study, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = queued(3)
    prompt_tokens = max(study.engine.count_tokens("llama", p) for prompts in batch for p in prompts.values())
    # Room for two rows of (longest prompt + max_new_tokens) per call, not three.
    budget = 2 * (prompt_tokens + MAX_NEW) + 1
    monkeypatch.setattr(study.engine, "settings", EngineSettings(max_batch_size=64, max_batch_tokens=budget))
    study.engine.stats.batch_sizes.clear()
    results = study.engine.generate_many(batch)
    assert all(r.ok for ticket in results for r in ticket)
    assert max(study.engine.stats.batch_sizes) == 2
    assert sum(study.engine.stats.batch_sizes) == 9


def test_out_of_memory_retries_with_smaller_batches(
    study: Study, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = queued(3)
    expected = study.engine.generate_many(batch)
    model = study.engine._bases[(str(paths["llama_base"]), "nf4")].model
    real_generate = model.generate
    llama_sizes: list[int] = []

    def generate(*args: object, **kwargs: object) -> object:
        rows = kwargs["input_ids"].shape[0]  # type: ignore[attr-defined]
        llama_sizes.append(rows)
        if rows > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate)
    retries = study.engine.stats.retries
    results = study.engine.generate_many(batch)
    # 6 llama rows fail, then each half of 3 fails and runs as 2 + 1.
    assert llama_sizes == [6, 3, 2, 1, 3, 2, 1]
    assert study.engine.stats.retries == retries + 3
    assert texts(results) == texts(expected)  # nothing lost, nothing reordered


def test_out_of_memory_on_every_size_fails_only_those_drafts(
    study: Study, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = study.engine._bases[(str(paths["llama_base"]), "nf4")].model

    def generate(*args: object, **kwargs: object) -> object:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(model, "generate", generate)
    results = study.engine.generate_many(queued(2))
    for ticket in results:
        by_model = {r.model: r for r in ticket}
        assert by_model["gptj-ft"].ok  # the other base is untouched
        for name in LLAMA_NAMES:
            assert by_model[name].text is None
            assert "out of memory" in (by_model[name].error or "")


def test_requests_override_settings_per_row(study: Study) -> None:
    short, fixed, bad = study.engine.run(
        [
            DraftRequest("llama-ft", PROMPT, max_new_tokens=2),
            DraftRequest("llama", PROMPT, max_new_tokens=7, ignore_eos=True),
            DraftRequest("gptj-ft", PROMPT, top_p=0.0),
        ]
    )
    assert 0 < short.completion_tokens <= 2
    assert fixed.completion_tokens == 7  # ignore_eos: exactly max_new_tokens
    assert bad.text is None and "top_p" in (bad.error or "")
    with pytest.raises(KeyError, match="unknown model"):
        study.engine.run([DraftRequest("nope", PROMPT)])


def test_row_sampler_ignores_eos_and_penalises_real_tokens_only() -> None:
    spec = ModelSpec("m", "base", temperature=0.0, repetition_penalty=2.0)
    pad, eos = 0, 1
    # Row 0 is left-padded (starts at 2); token 3 appears only in its padding.
    input_ids = torch.tensor([[pad, 3, 4, 5], [6, 4, 5, 7]])
    scores = torch.tensor([[0.0, 9.0, 1.0, 4.0, 4.0, 1.0, 0.0, 0.0]] * 2)
    out = RowSampler([spec, replace(spec, name="n")], [2, 0], [True, False], {pad, eos})(input_ids, scores)
    assert out[0, eos] == -math.inf and out[1, eos] == 9.0  # only the ignore_eos row loses eos
    assert out[0, 3] == 4.0  # token 3 was only seen as padding in row 0: no penalty
    assert out[0, 4] == 2.0 and out[1, 4] == 2.0  # seen: 4.0 / 2
    assert out[1, 7] == 0.0  # seen, score 0 stays 0


def test_row_sampler_samples_each_seeded_row_independently() -> None:
    hot = ModelSpec("hot", "base", temperature=1.0, top_p=1.0, repetition_penalty=1.0, seed=5)
    cold = ModelSpec("cold", "base", temperature=0.0, repetition_penalty=1.0)
    input_ids = torch.tensor([[2], [2], [2]])
    scores = torch.randn(1, 50, generator=torch.Generator().manual_seed(0)).repeat(3, 1)
    first = RowSampler([hot, cold, hot], [0, 0, 0])(input_ids, scores.clone())
    alone = RowSampler([hot], [0])(input_ids[:1], scores[:1].clone())
    assert torch.isfinite(first[0]).sum() == 1  # one-hot: the sampled token
    assert torch.equal(first[1], scores[1])  # the greedy row keeps its scores
    assert torch.equal(first[0], alone[0]) and torch.equal(first[2], alone[0])  # same seed, same draw


def test_adapters_run_in_the_compute_dtype(paths: dict[str, Path]) -> None:
    # What a GPU gets (bf16 compute), forced on the CPU: LoRA weights follow, output still comes.
    engine = DraftEngine(study_specs(paths, max_new_tokens=4, temperature=0.0)[::2], device="cpu")
    engine.compute_dtype = torch.bfloat16
    try:
        results = engine.generate({"llama-ft": PROMPT, "llama": PROMPT})
        model = engine._bases[(str(paths["llama_base"]), "nf4")].model
        lora = {p.dtype for name, p in model.named_parameters() if "lora_" in name}
    finally:
        engine.close()
    assert lora == {torch.bfloat16}
    assert all(r.ok for r in results)


def test_cleanup_drops_control_characters() -> None:
    from models.cleanup import clean_completion

    assert clean_completion("Hello\x05 there.\tBye\x1b!\n") == "Hello there.\tBye!"


def test_a_hub_model_that_is_not_downloaded_fails_at_once_with_the_download_command() -> None:
    engine = DraftEngine([ModelSpec("m", "someorg/never-downloaded-model")])
    with pytest.raises(ModelLoadError, match=r"not downloaded: run `hf download someorg/never-downloaded"):
        engine.load()
