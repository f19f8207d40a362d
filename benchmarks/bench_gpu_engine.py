"""The draft engine at the study's real shapes on a GPU: tokens/s against the bandwidth limit.

    python -m benchmarks.bench_gpu_engine                          # CUDA, 7B shapes (gpu_figures.sh)
    python -m benchmarks.bench_gpu_engine --device cpu --shape mini --rows 2 --new-tokens 8   # smoke

Random-weight LLaMa-2-7B and GPT-J-6B bases are made in GPU memory and quantized to NF4 there
(``benchmarks.random_models.in_memory_base``: nothing written to disk but the two random r=64
adapters), and served by the ``DraftEngine`` as the study's three models, compiled decoding steps
on (``[engine] compile = "auto"``). Prints one JSON object:

- per row count (``--rows``), for the LLaMa pair (half the rows with the adapter, half untuned, in
  one batch) and for GPT-J: tokens/s, the bandwidth limit for that work and the fraction reached;
- one ticket's three drafts end to end (``--new-tokens`` each, the latency an agent waits);
- compile time (each batch and length bucket compiles once; warm-up runs take it), peak memory.

Every draft is exactly ``--new-tokens`` long (end-of-sequence ignored) after a prompt of exactly
``--prompt-tokens``; the limit counts every weight byte and each row's KV cache per step
(``benchmarks/bandwidth.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from benchmarks.bandwidth import bound_seconds, kv_bytes_per_token, weight_bytes_per_step
from benchmarks.bench_drafts import exact_prompt, timed
from benchmarks.random_models import in_memory_base, write_random_adapter
from models.engine import DraftEngine
from models.spec import DraftRequest, EngineSettings, ModelSpec

H100_TBPS = 3.35
GOALS = {"fraction_of_limit_32_rows_min": 0.40, "one_ticket_three_drafts_s_max_h100": 6.0}
SAMPLING: dict[str, Any] = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}


def build_engine(shape: str, device: str, adapters: Path, compile_mode: str) -> DraftEngine:
    """The study's three models on two in-memory random bases."""
    specs = [
        ModelSpec("llama2-7b-ft", f"random/llama-{shape}", str(adapters / "llama"), **SAMPLING),
        ModelSpec("gptj-6b-ft", f"random/gptj-{shape}", str(adapters / "gptj"), **SAMPLING),
        ModelSpec("llama2-7b", f"random/llama-{shape}", **SAMPLING),
    ]
    engine = DraftEngine(specs, device=device, settings=EngineSettings(compile=compile_mode))  # type: ignore[arg-type]
    for seed, (family, spec) in enumerate((("llama", specs[0]), ("gptj", specs[1]))):
        print(f"making the random {family} base in {device} memory…", file=sys.stderr)
        model, tokenizer = in_memory_base(family, shape, device, seed)
        write_random_adapter(model, adapters / family, seed=seed)
        engine.adopt_base(spec.name, model, tokenizer)
    engine.load()  # the adapters
    return engine


def measure(
    engine: DraftEngine,
    device: str,
    requests: list[DraftRequest],
    prompt_tokens: int,
    new_tokens: int,
    bandwidth: float,
) -> dict[str, Any]:
    """Warm-up (compiles the shape once), then one timed run; tokens/s and the limit's fraction."""
    compile_before = engine.compile_seconds
    warm = engine.run(requests)
    # Random weights write ids beyond the tiny tokenizer's vocabulary: "no text" is no failure.
    failed = [r.error for r in warm if r.error and r.completion_tokens != new_tokens]
    if failed:
        raise RuntimeError(f"the engine failed: {failed[0]}")
    compiled = engine.compile_seconds - compile_before
    results, seconds = timed(device, lambda: engine.run(requests))
    wrong = [r.completion_tokens for r in results if r.completion_tokens != new_tokens]
    if wrong:
        raise RuntimeError(f"drafts of {wrong} tokens, expected {new_tokens} each")
    base = engine._bases[engine._by_name[requests[0].model].base_key]
    weights = weight_bytes_per_step(base.model)
    kv = kv_bytes_per_token(base.model.config, engine.compute_dtype)
    bound = bound_seconds(weights, kv, [len(requests)], prompt_tokens, new_tokens, bandwidth)
    tokens = len(requests) * new_tokens
    return {
        "rows": len(requests),
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "limit_tokens_per_s": round(tokens / bound, 1),
        "fraction_of_limit": round(bound / seconds, 3),
        "compile_seconds": round(compiled, 1),
        "weight_bytes_per_step": weights,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu_engine", description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", choices=("mini", "7b"), default="7b")
    parser.add_argument("--rows", type=int, nargs="+", default=[2, 32])
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--compile", choices=("auto", "off"), default="auto")
    parser.add_argument("--peak-bandwidth-tbps", type=float, default=H100_TBPS)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu_engine: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    on_gpu = args.device.startswith("cuda")
    bandwidth = args.peak_bandwidth_tbps * 1e12
    report: dict[str, Any] = {
        "benchmark": "bench_gpu_engine",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device_name": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "torch": torch.__version__,
        "shape": args.shape,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "peak_tb_per_s": args.peak_bandwidth_tbps,
        "goals": GOALS,
    }
    with tempfile.TemporaryDirectory(prefix="draftdesk-bench-adapters-") as adapters:
        engine = build_engine(args.shape, args.device, Path(adapters), args.compile)
        report["compiled"] = engine.compiles
        tokenizer = engine._bases[engine._by_name["llama2-7b-ft"].base_key].tokenizer
        prompts = [exact_prompt(tokenizer, args.prompt_tokens, i) for i in range(max(args.rows))]

        def rows_of(names: tuple[str, ...], rows: int) -> list[DraftRequest]:
            return [
                DraftRequest(
                    names[i % len(names)], prompts[i], max_new_tokens=args.new_tokens, ignore_eos=True
                )
                for i in range(rows)
            ]

        for rows in args.rows:
            print(f"{rows} rows…", file=sys.stderr)
            report[f"llama_pair_{rows}_rows"] = measure(
                engine,
                args.device,
                rows_of(("llama2-7b-ft", "llama2-7b"), rows),
                args.prompt_tokens,
                args.new_tokens,
                bandwidth,
            )
            report[f"gptj_{rows}_rows"] = measure(
                engine,
                args.device,
                rows_of(("gptj-6b-ft",), rows),
                args.prompt_tokens,
                args.new_tokens,
                bandwidth,
            )
        ticket = [
            DraftRequest(name, prompts[0], max_new_tokens=args.new_tokens, ignore_eos=True)
            for name in ("llama2-7b-ft", "gptj-6b-ft", "llama2-7b")
        ]
        engine.run(ticket)  # warm-up: the GPT-J row alone is a bucket of its own
        _, seconds = timed(args.device, lambda: engine.run(ticket))
        report["one_ticket_three_drafts_s"] = round(seconds, 3)
        report["compile_seconds_total"] = round(engine.compile_seconds, 1)
        if on_gpu:
            report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        engine.close()
    last = max(args.rows)
    report["goals_met"] = {
        "fraction_of_limit": min(
            report[f"llama_pair_{last}_rows"]["fraction_of_limit"],
            report[f"gptj_{last}_rows"]["fraction_of_limit"],
        )
        >= GOALS["fraction_of_limit_32_rows_min"],
        "one_ticket": report["one_ticket_three_drafts_s"] <= GOALS["one_ticket_three_drafts_s_max_h100"],
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
