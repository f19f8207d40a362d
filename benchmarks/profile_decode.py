"""Where a decoding step of the draft engine spends its GPU time: ``python -m benchmarks.profile_decode``.

Loads the 7B-shaped LLaMa base of ``bench_drafts`` (NF4, with its random adapter) in the draft
engine, drafts ``--rows`` rows of ``--new-tokens`` tokens under ``torch.profiler``, and prints one
JSON object: the GPU time per decoded token and the kernels that take most of it, grouped by
name. It answers "what holds the engine below the memory-bandwidth limit".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.bench_drafts import exact_prompt
from benchmarks.random_models import build_models
from models.engine import DraftEngine
from models.spec import DraftRequest, ModelSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_decode", description=__doc__)
    parser.add_argument("--shape", choices=("mini", "7b"), default="7b")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--models-dir", type=Path, default=Path(".draftdesk/bench-models"))
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the script")
    args = parser.parse_args(argv)
    on_gpu = args.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        print("profile_decode: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoTokenizer

    paths = build_models(args.shape, args.models_dir, args.device)
    base, adapter = str(paths["llama_base"]), str(paths["llama_adapter"])
    specs = [ModelSpec("ft", base, adapter, temperature=0.7, top_p=0.9, seed=1)]
    tokenizer = AutoTokenizer.from_pretrained(base)
    prompts = [exact_prompt(tokenizer, args.prompt_tokens, i) for i in range(args.rows)]
    requests = [DraftRequest("ft", p, max_new_tokens=args.new_tokens, ignore_eos=True) for p in prompts]
    activity = ProfilerActivity.CUDA if on_gpu else ProfilerActivity.CPU
    with DraftEngine(specs, device=args.device) as engine:
        engine.run(requests[:2])  # warm-up
        _sync(on_gpu)
        with profile(activities=[activity]) as prof:
            engine.run(requests)
            _sync(on_gpu)

    def own_us(event: object) -> float:
        return event.self_device_time_total if on_gpu else event.self_cpu_time_total  # type: ignore[attr-defined]

    events = [e for e in prof.key_averages() if not on_gpu or e.device_type.name == "CUDA"]
    total_us = sum(own_us(e) for e in events)
    kernels = sorted(events, key=own_us, reverse=True)[: args.top]
    report = {
        "benchmark": "profile_decode",
        "device_name": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "rows": args.rows,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "gpu_ms_total": round(total_us / 1000, 1),
        "gpu_ms_per_decoded_token_row": round(total_us / 1000 / args.new_tokens, 3),
        "kernels": [
            {
                "name": e.key[:90],
                "calls": e.count,
                "gpu_ms": round(own_us(e) / 1000, 1),
                "share": round(own_us(e) / total_us, 3),
            }
            for e in kernels
        ],
    }
    print(json.dumps(report, indent=1))
    return 0


def _sync(on_gpu: bool) -> None:
    if on_gpu:
        torch.cuda.synchronize()


if __name__ == "__main__":
    raise SystemExit(main())
