"""The draft engine on tiny LLaMA- and GPT-J-shaped models: real NF4 + LoRA code path on the CPU."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers / huggingface_hub read it
os.environ["TRANSFORMERS_OFFLINE"] = "1"

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
from models import decoding as decoding_module
from models import engine as engine_module
from models.config import parse_models
from models.engine import DraftEngine, ModelLoadError, ModelSpec
from models.sampling import RowSampling, RowSettings
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
    decoder = study.engine._bases[(str(paths["llama_base"]), "nf4")].decoder
    real_generate = decoder.generate
    attempts: list[list[int]] = []

    def generate(
        input_ids: torch.Tensor, mask: torch.Tensor, rows: list[decoding_module.DecodeRow]
    ) -> object:
        adapters = [row.adapter for row in rows]  # -1: the untuned base
        attempts.append(adapters)
        if -1 in adapters:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(input_ids, mask, rows)

    monkeypatch.setattr(decoder, "generate", generate)
    results = study.engine.generate({"llama-ft": PROMPT, "gptj-ft": PROMPT, "llama": PROMPT})
    by_model = {r.model: r for r in results}
    assert by_model["llama-ft"].ok and by_model["gptj-ft"].ok
    assert by_model["llama"].text is None
    assert "out of memory" in (by_model["llama"].error or "")
    # The mixed batch failed, then each row was retried alone.
    assert attempts == [[0, -1], [0], [-1]]


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


class ScriptedSampler(RowSampling):
    """Every row forced onto ``SCRIPTED``'s tokens, then eos: a model that runs on into a turn."""

    script: ClassVar[tuple[int, ...]] = ()
    eos: ClassVar[int] = 0

    def choose(
        self, logits: torch.Tensor, history: torch.Tensor | None, uniform: torch.Tensor
    ) -> torch.Tensor:
        step = getattr(self, "step", 0)
        self.step = step + 1
        token = self.script[step] if step < len(self.script) else self.eos
        return torch.full((logits.shape[0], 1), token, dtype=torch.long)


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
    monkeypatch.setattr(ScriptedSampler, "eos", tokenizer.eos_token_id)
    monkeypatch.setattr(decoding_module, "RowSampling", ScriptedSampler)
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
    decoder = study.engine._bases[(str(paths["llama_base"]), "nf4")].decoder
    real_generate = decoder.generate
    llama_sizes: list[int] = []

    def generate(input_ids: torch.Tensor, *args: object) -> object:
        rows = input_ids.shape[0]
        llama_sizes.append(rows)
        if rows > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real_generate(input_ids, *args)

    monkeypatch.setattr(decoder, "generate", generate)
    retries = study.engine.stats.retries
    results = study.engine.generate_many(batch)
    # 6 llama rows fail, then each half of 3 fails and runs as 2 + 1.
    assert llama_sizes == [6, 3, 2, 1, 3, 2, 1]
    assert study.engine.stats.retries == retries + 3
    assert texts(results) == texts(expected)  # nothing lost, nothing reordered


def test_out_of_memory_on_every_size_fails_only_those_drafts(
    study: Study, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    decoder = study.engine._bases[(str(paths["llama_base"]), "nf4")].decoder

    def generate(*args: object) -> object:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(decoder, "generate", generate)
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


def test_row_sampling_bans_end_tokens_for_ignore_eos_rows_and_penalises_seen_tokens() -> None:
    greedy = RowSettings(temperature=0.0, top_p=1.0, repetition_penalty=2.0, seed=None)
    pad, eos = 0, 1
    rows = [replace(greedy, ignore_eos=True), greedy, replace(greedy, repetition_penalty=1.0)]
    sampling = RowSampling(rows, steps=4, vocab_size=8, end_ids={pad, eos}, device="cpu")
    scores = torch.tensor([[0.0, 9.0, 1.0, 4.0, 3.0, -2.0, 0.0, 0.0]] * 3)
    history = torch.tensor([[3, 5, 3]] * 3)  # the tokens each row has so far (3 twice: penalised once)
    chosen = sampling.choose(scores, history, sampling.uniforms[:, :1])
    # Row 0 may not end: eos (9.0) is banned, token 3 (4.0 / 2 = 2.0) loses to token 4 (3.0).
    # Row 1 takes eos. Row 2 has no penalty: token 3 would beat 4, but eos is allowed and wins.
    assert chosen.tolist() == [[4], [1], [1]]
    rows = [replace(greedy, ignore_eos=True, repetition_penalty=1.0)]
    no_penalty = RowSampling(rows, steps=4, vocab_size=8, end_ids={pad, eos}, device="cpu")
    assert no_penalty.choose(scores[:1], history[:1], no_penalty.uniforms[:, :1]).tolist() == [[3]]


def test_row_sampling_draws_each_seeded_row_from_its_seed_alone() -> None:
    hot = RowSettings(temperature=1.0, top_p=1.0, repetition_penalty=1.0, seed=5)
    cold = RowSettings(temperature=0.0, top_p=1.0, repetition_penalty=1.0, seed=None)
    scores = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))
    draws = []
    for rows in ([hot, cold, hot], [hot]):
        sampling = RowSampling(rows, steps=30, vocab_size=50, end_ids=(), device="cpu")
        batch = scores.repeat(len(rows), 1)
        draws.append(
            torch.cat([sampling.choose(batch, None, sampling.uniforms[:, i : i + 1]) for i in range(30)], 1)
        )
    together, alone = draws
    assert torch.equal(together[0], alone[0]) and torch.equal(together[2], alone[0])  # same seed, same draws
    assert set(together[1].tolist()) == {int(scores.argmax())}  # the greedy row takes the argmax each time
    assert len(set(alone[0].tolist())) > 5  # sampled: not one token over and over


def test_top_p_keeps_only_the_nucleus() -> None:
    # Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the first two tokens, whatever the draw.
    probabilities = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    nucleus = RowSettings(temperature=1.0, top_p=0.7, repetition_penalty=1.0, seed=3)
    sampling = RowSampling([nucleus], steps=400, vocab_size=4, end_ids=(), device="cpu")
    logits = probabilities.log()
    picked = [int(sampling.choose(logits, None, sampling.uniforms[:, i : i + 1])) for i in range(400)]
    assert set(picked) == {1, 3}
    share = picked.count(1) / len(picked)
    assert 0.5 < share < 0.75  # 0.5 / 0.8 = 0.625 of the kept mass


def test_adapters_run_in_the_compute_dtype(paths: dict[str, Path]) -> None:
    # What a GPU gets (bf16 compute), forced on the CPU: LoRA weights follow, output still comes.
    engine = DraftEngine(study_specs(paths, max_new_tokens=4, temperature=0.0)[::2], device="cpu")
    engine.compute_dtype = torch.bfloat16
    try:
        results = engine.generate({"llama-ft": PROMPT, "llama": PROMPT})
        model = engine._bases[(str(paths["llama_base"]), "nf4")].model
        lora = {b.dtype for name, b in model.named_buffers() if "lora_" in name}
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


# ---------------------------------------------------------------------- the decoding loop itself


def peft_greedy(base: str, adapter: str | None, prompt: str, max_new: int, penalty: float) -> list[int]:
    """What plain transformers + PEFT generate for one row alone (greedy), to its first end token."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.float32,
        bnb_4bit_use_double_quant=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(
        base, quantization_config=quantization, dtype=torch.float32, device_map="cpu"
    )
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    encoded = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.eval().generate(
            **encoded, max_new_tokens=max_new, do_sample=False, repetition_penalty=penalty, pad_token_id=0
        )
    new = out[0, encoded["input_ids"].shape[1] :].tolist()
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    return next((new[:i] for i, t in enumerate(new) if t in ends), new)


@pytest.fixture(scope="module")
def second_llama_adapter(paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another adapter for the LLaMA base, of another rank: two adapters stacked on one layer."""
    from models.tiny import build_tiny_adapter

    return build_tiny_adapter(paths["llama_base"], tmp_path_factory.mktemp("second") / "adapter", seed=7, r=4)


def test_a_mixed_batch_is_token_for_token_what_peft_generates_for_each_row_alone(
    paths: dict[str, Path], second_llama_adapter: Path
) -> None:
    """Two adapters and the untuned base on LLaMA, an adapter and the untuned base on GPT-J, rows
    of different lengths (left padding) in one batch per base: each row's greedy draft is what
    transformers' generate() of that row's model alone (PEFT for the adapters) gives."""
    llama, gptj = str(paths["llama_base"]), str(paths["gptj_base"])
    settings = {"temperature": 0.0, "max_new_tokens": 12, "repetition_penalty": 1.1, "stop": ()}
    specs = [
        ModelSpec("llama-a", llama, str(paths["llama_adapter"]), **settings),
        ModelSpec("llama-b", llama, str(second_llama_adapter), **settings),
        ModelSpec("llama", llama, **settings),
        ModelSpec("gptj-ft", gptj, str(paths["gptj_adapter"]), **settings),
        ModelSpec("gptj", gptj, **settings),
    ]
    prompts = [PROMPT, "Customer: refund\n\nAgent:", "Customer: Where is my parcel? It is late.\n\nAgent:"]
    requests = [DraftRequest(spec.name, prompts[i % 3]) for i, spec in enumerate(specs * 2)]
    engine = DraftEngine(specs, device="cpu")
    try:
        results = engine.run(requests)
        assert engine.stats.generate_calls == 2  # one decoding loop per base, all its rows together
        for request, result in zip(requests, results, strict=True):
            spec = engine._by_name[request.model]
            expected = peft_greedy(spec.base_model, spec.adapter, request.prompt, 12, 1.1)
            tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
            assert result.completion_tokens == len(expected), request
            text = tokenizer.decode(expected, skip_special_tokens=True)
            from models.cleanup import clean_completion

            assert result.text == (clean_completion(text, (), truncated=len(expected) >= 12) or None), request
    finally:
        engine.close()


def test_a_seeded_draft_is_the_same_alone_and_in_any_batch(paths: dict[str, Path]) -> None:
    llama = str(paths["llama_base"])
    specs = [
        ModelSpec("seeded", llama, str(paths["llama_adapter"]), temperature=0.8, seed=11, max_new_tokens=16),
        ModelSpec("other", llama, temperature=1.0, max_new_tokens=16),
    ]
    engine = DraftEngine(specs, device="cpu")
    try:
        alone = engine.run([DraftRequest("seeded", PROMPT)])[0]
        crowded = engine.run(
            [DraftRequest("other", "Customer: refund\n\nAgent:"), DraftRequest("seeded", PROMPT)]
            + [DraftRequest("other", PROMPT + " Hi")] * 3
        )[1]
        again = engine.run([DraftRequest("seeded", PROMPT)])[0]
        reseeded = engine.run([DraftRequest("seeded", PROMPT, seed=12)])[0]
    finally:
        engine.close()
    assert alone.ok and (alone.text, alone.completion_tokens) == (crowded.text, crowded.completion_tokens)
    assert (again.text, again.completion_tokens) == (alone.text, alone.completion_tokens)
    assert reseeded.text != alone.text


def test_a_decoding_step_makes_the_host_wait_for_nothing(study: Study) -> None:
    """Inside a step: no .item(), nonzero, host copy or other sync-like operation; the loop looks
    at the device once every CHECK_EVERY steps to stop early, and copies the tokens once at the end."""
    from benchmarks.bench_engine_overhead import counting

    base = next(b for key, b in study.engine._bases.items() if key[0].endswith("llama_base"))
    decoder = base.decoder
    steps: list[tuple[int, int]] = []
    original = decoder._step

    def counted_step(*args: object) -> None:
        with counting() as counter:
            original(*args)
        steps.append((counter.total, counter.syncs))

    decoder._step = counted_step  # type: ignore[method-assign]
    try:
        requests = [DraftRequest(name, PROMPT, max_new_tokens=20, ignore_eos=True) for name in LLAMA_NAMES]
        requests += [
            DraftRequest("llama-ft", "Customer: refund\n\nAgent:", temperature=0.7, max_new_tokens=20)
        ]
        with counting() as whole_call:
            study.engine.run(requests)
    finally:
        decoder._step = original  # type: ignore[method-assign]
    assert len(steps) == 19  # the prefill gave the first token
    assert all(syncs == 0 for _, syncs in steps), steps
    assert len({ops for ops, _ in steps}) == 1  # the same operations at every step
    # Outside the steps: the early-stop looks (19 // CHECK_EVERY), the final copy of the tokens and the
    # call's set-up (its settings made into tensors once: lift_fresh, not counted here).
    waits = whole_call.syncs - whole_call.ops["lift_fresh"]
    assert waits <= 19 // decoding_module.CHECK_EVERY + 1 + 4, whole_call.ops


def test_the_compiled_step_traces_as_one_graph_and_gives_the_eager_drafts(study: Study) -> None:
    """The CUDA path on the CPU: rows padded to a bucket, kept buffers, and the step through
    torch.compile with fullgraph=True (a graph break raises) on the eager backend."""
    base = next(b for key, b in study.engine._bases.items() if key[0].endswith("llama_base"))
    requests = [
        DraftRequest("llama-ft", PROMPT, max_new_tokens=9),
        DraftRequest("llama", "Customer: refund\n\nAgent:", max_new_tokens=9),
        DraftRequest("llama-ft", "Customer: Where is my parcel?\n\nAgent:", temperature=0.7, seed=3),
    ]
    eager = study.engine.run(requests)
    compiled = decoding_module.Decoder(
        base.model,
        base.tokenizer,
        base.router,
        base.decoder.end_ids,
        compile_step=True,
        compile_backend="eager",
        max_rows=base.decoder.max_rows,
    )
    eager_decoder, base.decoder = base.decoder, compiled
    try:
        first = study.engine.run(requests)
        second = study.engine.run(requests[:1] + requests[1:])
    finally:
        base.decoder = eager_decoder
    assert compiled.stats.compiled_buckets == [(4, decoding_module.LENGTH_BUCKET)]  # 3 rows -> bucket of 4
    for a, b, c in zip(eager, first, second, strict=True):
        assert (a.text, a.completion_tokens) == (b.text, b.completion_tokens) == (c.text, c.completion_tokens)


def test_adapters_the_engine_cannot_apply_exactly_are_refused_with_the_reason(
    paths: dict[str, Path], tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(paths["llama_base"])
    dora = LoraConfig(r=4, target_modules=["q_proj"], use_dora=True, task_type="CAUSAL_LM")
    get_peft_model(base, dora).save_pretrained(tmp_path / "dora")
    llama = str(paths["llama_base"])
    engine = DraftEngine(
        [
            ModelSpec("dora", llama, str(tmp_path / "dora"), temperature=0.0),
            ModelSpec("plain", llama, temperature=0.0),
        ],
        device="cpu",
    )
    try:
        refused, served = engine.run([DraftRequest("dora", PROMPT), DraftRequest("plain", PROMPT)])
    finally:
        engine.close()
    assert refused.text is None and "DoRA" in (refused.error or "") and "dora" in (refused.error or "")
    assert served.ok


def test_engine_compile_setting_is_checked() -> None:
    assert EngineSettings(compile="off").compile == "off"
    with pytest.raises(ValueError, match="compile"):
        EngineSettings(compile="always")  # type: ignore[arg-type]
    assert not DraftEngine([ModelSpec("x", "base")], device="cpu").compiles
