"""Drafts of queued tickets: the naive path vs the draft engine, side by side in one run.

    python -m benchmarks.bench_drafts                                   # CPU, tiny models
    python -m benchmarks.bench_drafts --device cuda --shape 7b          # real 7B shapes, NF4

Both paths draft ``--tickets`` tickets × 3 models (LLaMa fine-tuned, GPT-J fine-tuned, LLaMa
untuned) with the study's sampling settings, every prompt exactly ``--prompt-tokens`` tokens and
every draft exactly ``--new-tokens`` new tokens (end-of-sequence ignored).

- naive: each model loaded separately (three models in memory), ``generate()`` once per draft.
- engine: ``DraftEngine``: two bases, mixed-adapter batches, all queued tickets in one call.

Prints one JSON object: tokens/s of each path and their ratio; per-ticket latency; peak GPU
memory and the fraction of the memory-bandwidth limit on CUDA (``--peak-bandwidth-tbps``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from benchmarks.bandwidth import bound_seconds, kv_bytes_per_token, weight_bytes_per_step
from benchmarks.random_models import build_models
from models.engine import DraftEngine
from models.machine import cpu_description
from models.spec import DraftRequest, EngineSettings, ModelSpec
from models.tiny import sample_corpus

DEFAULTS = {  # shape: (prompt tokens, new tokens, naive tickets, timed runs per path)
    "tiny": (64, 32, 16, 3),
    "mini": (128, 64, 4, 1),
    "7b": (512, 256, 2, 1),  # naive 7B runs ~30 tok/s: 2 tickets give its rate in about a minute
}
H100_TBPS = 3.35
CPU_GOAL = 3.0  # the goal on CPU with the tiny models: engine >= 3x the naive path


@dataclass(frozen=True)
class Setup:
    specs: list[ModelSpec]
    prompts: list[str]  # one per ticket, the same for each of its three drafts
    prompt_tokens: int
    new_tokens: int


def study_specs(paths: dict[str, Path], new_tokens: int) -> list[ModelSpec]:
    """The study's three models with config.toml's sampling settings and no stop strings."""
    llama, gptj = str(paths["llama_base"]), str(paths["gptj_base"])
    settings: dict[str, Any] = {"max_new_tokens": new_tokens, "temperature": 0.7, "top_p": 0.9}
    return [
        ModelSpec("llama2-7b-ft", llama, str(paths["llama_adapter"]), seed=1, **settings),
        ModelSpec("gptj-6b-ft", gptj, str(paths["gptj_adapter"]), seed=2, **settings),
        ModelSpec("llama2-7b", llama, seed=3, **settings),
    ]


def exact_prompt(tokenizer: PreTrainedTokenizerBase, tokens: int, offset: int) -> str:
    """Support-ticket text of exactly ``tokens`` tokens (BOS included); ``offset`` varies it."""
    words = " ".join(sample_corpus()).split()
    start = (offset * 37) % len(words)
    text = f"Ticket {offset}:"
    i = start
    while True:
        candidate = f"{text} {words[i % len(words)]}"
        count = len(tokenizer(candidate)["input_ids"])
        if count > tokens:
            break
        text = candidate
        i += 1
    # Pad with single characters if a long word overshot.
    while len(tokenizer(text)["input_ids"]) < tokens:
        text += "."
    return text


def make_setup(paths: dict[str, Path], tickets: int, prompt_tokens: int, new_tokens: int) -> Setup:
    tokenizer = AutoTokenizer.from_pretrained(paths["llama_base"])
    prompts = [exact_prompt(tokenizer, prompt_tokens, i) for i in range(tickets)]
    lengths = {len(tokenizer(p)["input_ids"]) for p in prompts}
    return Setup(study_specs(paths, new_tokens), prompts, max(lengths), new_tokens)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return None


def timed(device: str, fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """``fn``'s result and its median wall time over ``repeat`` runs (robust to a noisy machine)."""
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


# ---------------------------------------------------------------------- engine


def run_engine(
    setup: Setup, device: str, settings: EngineSettings, bandwidth: float | None, repeat: int
) -> dict[str, Any]:
    _reset_peak(device)
    engine = DraftEngine(setup.specs, device=device, settings=settings)
    engine.load()
    weights_gib = _peak_gib(device)
    n = setup.new_tokens

    def requests(prompts: Sequence[str], new_tokens: int) -> list[DraftRequest]:
        return [
            DraftRequest(spec.name, prompt, max_new_tokens=new_tokens, ignore_eos=True)
            for prompt in prompts
            for spec in setup.specs
        ]

    engine.run(requests(setup.prompts[:1], 4))  # warm-up: kernels, allocator, caches
    one, one_seconds = timed(device, lambda: engine.run(requests(setup.prompts[:1], n)), repeat)
    engine.stats.batch_sizes.clear()
    results, seconds = timed(device, lambda: engine.run(requests(setup.prompts, n)), repeat)
    batch_sizes = engine.stats.batch_sizes[: len(engine.stats.batch_sizes) // repeat]
    _check(results + one, n)
    tokens = len(results) * n
    figures: dict[str, Any] = {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "generate_calls": len(batch_sizes),
        "batch_sizes": batch_sizes,
        "latency_one_ticket_s": round(one_seconds, 3),
        "latency_queued_ticket_s": round(seconds, 3),  # every queued ticket is done when the batch is
        "weights_gib": weights_gib,
        "peak_gpu_memory_gib": _peak_gib(device),
    }
    if bandwidth:
        figures["bandwidth"] = _bandwidth(engine, setup, batch_sizes, seconds, tokens, bandwidth)
    engine.close()
    return figures


def _bandwidth(
    engine: DraftEngine, setup: Setup, batch_sizes: list[int], seconds: float, tokens: int, bandwidth: float
) -> dict[str, Any]:
    """Bound time of the engine's calls: the llama base ran the first calls, then the gptj base."""
    per_base: dict[str, dict[str, Any]] = {}
    bound = 0.0
    calls = iter(batch_sizes)
    for base_model, quant in list(engine._bases):
        base = engine._bases[(base_model, quant)]
        rows_here = sum(1 for spec in setup.specs if spec.base_model == base_model) * len(setup.prompts)
        sizes = []
        while sum(sizes) < rows_here:
            sizes.append(next(calls))
        weights = weight_bytes_per_step(base.model)
        kv = kv_bytes_per_token(base.model.config, engine.compute_dtype)
        base_bound = bound_seconds(weights, kv, sizes, setup.prompt_tokens, setup.new_tokens, bandwidth)
        bound += base_bound
        single_stream_bytes = weights + (setup.prompt_tokens + setup.new_tokens / 2) * kv
        per_base[Path(base_model).name] = {
            "weight_bytes_per_step": weights,
            "kv_bytes_per_token": kv,
            "single_stream_limit_tokens_per_s": round(bandwidth / single_stream_bytes, 1),
            "bound_seconds": round(base_bound, 4),
        }
    limit = tokens / bound
    return {
        "peak_tb_per_s": bandwidth / 1e12,
        "bases": per_base,
        "limit_tokens_per_s": round(limit, 1),
        "fraction_of_limit": round((tokens / seconds) / limit, 4),
    }


def _check(results: Sequence[Any], new_tokens: int) -> None:
    wrong = [r for r in results if r.completion_tokens != new_tokens and r.error is None]
    failed = [r for r in results if r.error and r.error != "the model produced no text"]
    if wrong or failed:
        raise SystemExit(f"benchmark run is not valid: {wrong[:2]} {failed[:2]}")


# ---------------------------------------------------------------------- naive


def _load_separately(spec: ModelSpec, engine: DraftEngine) -> tuple[Any, Any]:
    """One model on its own, as a script would load it: base (NF4) + its adapter."""
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    model = AutoModelForCausalLM.from_pretrained(
        spec.base_model,
        quantization_config=engine._quantization_config(spec),
        dtype=engine.compute_dtype,
        device_map=engine.device,
    )
    if spec.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.adapter, is_trainable=False)
    model.eval()
    return model, tokenizer


def run_naive(setup: Setup, device: str, tickets: int, repeat: int) -> dict[str, Any]:
    _reset_peak(device)
    helper = DraftEngine(setup.specs, device=device)  # for its quantization config and dtype only
    loaded = [(spec, *_load_separately(spec, helper)) for spec in setup.specs]
    weights_gib = _peak_gib(device)
    n = setup.new_tokens

    def draft(spec: ModelSpec, model: Any, tokenizer: Any, prompt: str, new_tokens: int) -> int:
        encoded = tokenizer(prompt, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=True,
                temperature=spec.temperature,
                top_p=spec.top_p,
                repetition_penalty=spec.repetition_penalty,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,  # ignore EOS: fixed output length
                pad_token_id=tokenizer.pad_token_id,
            )
        return output.shape[1] - encoded["input_ids"].shape[1]

    def ticket(prompt: str, new_tokens: int) -> int:
        return sum(draft(spec, model, tok, prompt, new_tokens) for spec, model, tok in loaded)

    ticket(setup.prompts[0], 4)  # warm-up
    one, one_seconds = timed(device, lambda: ticket(setup.prompts[0], n), repeat)
    made, seconds = timed(device, lambda: sum(ticket(p, n) for p in setup.prompts[:tickets]), repeat)
    expected = tickets * len(setup.specs) * n
    if made != expected or one != len(setup.specs) * n:
        raise SystemExit(f"naive run is not valid: {made} tokens, expected {expected}")
    figures = {
        "tickets": tickets,
        "tokens": made,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(made / seconds, 1),
        "generate_calls": tickets * len(setup.specs),
        "latency_one_ticket_s": round(one_seconds, 3),
        "weights_gib": weights_gib,
        "peak_gpu_memory_gib": _peak_gib(device),
    }
    loaded.clear()  # free the three models before the caller goes on
    return figures


# ---------------------------------------------------------------------- main


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_drafts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--shape", choices=("tiny", "mini", "7b"), default="tiny")
    parser.add_argument("--tickets", type=int, default=16, help="queued tickets (3 drafts each)")
    parser.add_argument("--prompt-tokens", type=int, help="tokens per prompt (default: by shape)")
    parser.add_argument("--new-tokens", type=int, help="new tokens per draft (default: by shape)")
    parser.add_argument(
        "--naive-tickets",
        type=int,
        help="tickets the naive path drafts; its tokens/s is per token (default: by shape)",
    )
    parser.add_argument("--max-batch-size", type=int, default=EngineSettings.max_batch_size)
    parser.add_argument("--max-batch-tokens", type=int, default=EngineSettings.max_batch_tokens)
    parser.add_argument(
        "--peak-bandwidth-tbps",
        type=float,
        help=f"peak memory bandwidth in TB/s for the bandwidth fraction (default on cuda: H100, {H100_TBPS})",
    )
    parser.add_argument("--models-dir", type=Path, default=Path(".draftdesk/bench-models"))
    parser.add_argument(
        "--repeat", type=int, help="timed runs per path; the median counts (default: by shape)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default on cpu: 1: tiny models gain nothing from more, and on a busy "
        "machine OpenMP's spin-waits swamp the figures; on cuda: torch's choice)",
    )
    parser.add_argument("--skip-naive", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_drafts: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    prompt_default, new_default, naive_default, repeat_default = DEFAULTS[args.shape]
    repeat = max(1, args.repeat or repeat_default)
    threads = args.threads or (None if args.device.startswith("cuda") else 1)
    if threads:
        torch.set_num_threads(threads)
    prompt_tokens = args.prompt_tokens or prompt_default
    new_tokens = args.new_tokens or new_default
    naive_tickets = min(args.naive_tickets or naive_default, args.tickets)
    bandwidth_tbps = args.peak_bandwidth_tbps or (H100_TBPS if args.device.startswith("cuda") else None)
    torch.manual_seed(0)
    paths = build_models(args.shape, args.models_dir, args.device)
    setup = make_setup(paths, args.tickets, prompt_tokens, new_tokens)
    settings = EngineSettings(max_batch_size=args.max_batch_size, max_batch_tokens=args.max_batch_tokens)
    engine = run_engine(
        setup, args.device, settings, bandwidth_tbps * 1e12 if bandwidth_tbps else None, repeat
    )
    naive = None if args.skip_naive else run_naive(setup, args.device, naive_tickets, repeat)
    report: dict[str, Any] = {
        "benchmark": "bench_drafts",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": _device_name(args.device),
        "cpu": cpu_description(),  # AVX512-BF16 changes bitsandbytes' CPU path
        "torch": torch.__version__,
        "shape": args.shape,
        "tickets": args.tickets,
        "drafts_per_ticket": len(setup.specs),
        "prompt_tokens": setup.prompt_tokens,
        "new_tokens": new_tokens,
        "timed_runs_per_path": repeat,
        "engine": engine,
        "naive": naive,
    }
    if naive is not None:
        report["speedup"] = round(engine["tokens_per_s"] / naive["tokens_per_s"], 2)
        if args.shape == "tiny" and not args.device.startswith("cuda"):
            report["goal"] = {"min_speedup": CPU_GOAL, "met": report["speedup"] >= CPU_GOAL}
    report["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
