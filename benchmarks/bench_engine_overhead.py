"""The draft engine's host work per decoding step, against plain ``generate()``, on the CPU.

``python -m benchmarks.bench_engine_overhead`` prints one JSON object. A LLaMA-shaped model
(4 layers, hidden 256, vocabulary 32,000, NF4) with an r=16 LoRA adapter on every linear layer
is served by the draft engine as two models, the adapter and the untuned base, their rows mixed
half and half in one batch. The reference is transformers' ``generate()`` of the same base with
the adapter merged into it: what one model alone costs, with nothing to route. Both sample the
same way (temperature 0.7, top-p 0.9, no top-k, repetition penalty 1.1, the prompt format's stop
strings) and run a fixed number of tokens.

Per decoding step, measured side by side at 2 and 32 rows: the aten operations dispatched (each
one a kernel launch on a GPU), the sync-like ones among them (``.item()``, ``nonzero``, … : each
stalls a GPU until it is idle), and the milliseconds. Each figure is the difference between a run
of ``--long`` and one of ``--short`` new tokens, divided by the steps between them, so the prompt's
prefill and each call's set-up drop out. The host work counted here is what a GPU waits for; the
GPU figures come from ``benchmarks/gpu_figures.sh``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.bench_drafts import exact_prompt
from core.prompt import STOP_SEQUENCES
from models.machine import cpu_description
from models.tiny import sample_corpus, train_tokenizer

SHAPE = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "vocab_size": 32000,
}
LORA_RANK, LORA_ALPHA = 16, 32
SAMPLING = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1}
# Operations that make the host wait for the device: a GPU has to finish everything queued first.
SYNC_OPS = frozenset(
    {
        "_local_scalar_dense",  # .item(), bool(t), int(t)
        "nonzero",
        "nonzero_static",
        "is_nonzero",
        "equal",
        "masked_select",
        "_unique2",
        "unique_dim",
        "unique_consecutive",
        "repeat_interleave",
        "allclose",
        "lift_fresh",  # a tensor made from Python data: on a GPU, a host-to-device copy that waits
    }
)
GOALS = {"ops_ratio_max": 1.2, "extra_syncs_max": 2.0, "ms_ratio_32_rows_max": 1.1}


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched while active, and the sync-like ones."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = Counter[str]()
        self.tolist_calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def syncs(self) -> int:
        return sum(n for name, n in self.ops.items() if name in SYNC_OPS) + self.tolist_calls


@contextmanager
def counting() -> Iterator[OpCounter]:
    """An OpCounter, plus ``Tensor.tolist`` calls (a device-to-host copy that dispatches nothing)."""
    counter = OpCounter()
    original = torch.Tensor.tolist

    def tolist(self: torch.Tensor) -> Any:
        counter.tolist_calls += 1
        return original(self)

    torch.Tensor.tolist = tolist  # type: ignore[method-assign]
    try:
        with counter:
            yield counter
    finally:
        torch.Tensor.tolist = original  # type: ignore[method-assign]


def build_model(root: Path) -> tuple[Path, Path]:
    """The base (bf16 on disk) and its random LoRA adapter, written once under ``root``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig

    base_dir, adapter_dir = root / "base", root / "adapter"
    if base_dir.is_dir() and adapter_dir.is_dir():
        return base_dir, adapter_dir
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(sample_corpus())
    # The vocabulary of the model: sampling sorts 32,000 scores per row, as LLaMa-2's does.
    tokenizer.add_tokens([f"<unused{i}>" for i in range(SHAPE["vocab_size"] - len(tokenizer))])
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**SHAPE, **ids), dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(**ids)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        model.save_pretrained(Path(tmp) / "base")
        tokenizer.save_pretrained(Path(tmp) / "base")
        lora = LoraConfig(
            r=LORA_RANK,
            lora_alpha=LORA_ALPHA,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
        get_peft_model(model, lora).save_pretrained(Path(tmp) / "adapter")
        (Path(tmp) / "base").rename(base_dir)
        (Path(tmp) / "adapter").rename(adapter_dir)
    return base_dir, adapter_dir


def prompts_for(tokenizer: Any, rows: int, prompt_tokens: int) -> list[str]:
    """Rows of different lengths (so the batch is left-padded), none longer than ``prompt_tokens``."""
    return [exact_prompt(tokenizer, prompt_tokens - (i % 4) * 4, i) for i in range(rows)]


class EngineSide:
    """The draft engine serving the base twice: with the adapter and untuned, rows mixed."""

    def __init__(self, base: Path, adapter: Path) -> None:
        from models.engine import DraftEngine
        from models.spec import ModelSpec

        common = {"stop": STOP_SEQUENCES, **SAMPLING}
        self.engine = DraftEngine(
            [
                ModelSpec("tuned", str(base), str(adapter), **common),
                ModelSpec("untuned", str(base), **common),
            ],
            device="cpu",
        )
        self.engine.load()

    def run(self, prompts: list[str], new_tokens: int) -> int:
        from models.spec import DraftRequest

        requests = [
            DraftRequest("tuned" if i % 2 == 0 else "untuned", p, max_new_tokens=new_tokens, ignore_eos=True)
            for i, p in enumerate(prompts)
        ]
        before = sum(base.decoder.stats.steps for base in self.engine._bases.values())
        results = self.engine.run(requests)
        failed = [r.error for r in results if r.error]
        if failed:
            raise RuntimeError(f"the engine failed: {failed[0]}")
        return sum(base.decoder.stats.steps for base in self.engine._bases.values()) - before


class ReferenceSide:
    """transformers' ``generate()`` of the base with the adapter merged (one model, no routing)."""

    def __init__(self, base: Path, adapter: Path) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.float32,
            bnb_4bit_use_double_quant=True,
        )
        model = AutoModelForCausalLM.from_pretrained(
            base, quantization_config=quantization, dtype=torch.float32, device_map="cpu"
        )
        self.model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.tokenizer.padding_side = "left"

    def run(self, prompts: list[str], new_tokens: int) -> int:
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = self.model.generate(
                **encoded,
                do_sample=True,
                **SAMPLING,
                top_k=0,  # generate()'s default top-k of 50 is not the engine's sampling: off
                max_new_tokens=new_tokens,
                stop_strings=list(STOP_SEQUENCES),
                tokenizer=self.tokenizer,
                eos_token_id=None,  # fixed lengths, as the engine's ignore_eos
                pad_token_id=self.tokenizer.pad_token_id,
            )
        return int(out.shape[1] - encoded["input_ids"].shape[1]) - 1  # steps after the prefill's token


def per_step(
    run: Callable[[list[str], int], int], prompts: list[str], short: int, long: int, repeats: int
) -> dict[str, float]:
    """Ops, sync-like ops and ms per decoding step: a long run minus a short one, per step between."""
    counts = []
    for new_tokens in (short, long):
        with counting() as counter:
            steps = run(prompts, new_tokens)
        counts.append((steps, counter.total, counter.syncs))
    steps = counts[1][0] - counts[0][0]
    if steps <= 0:
        raise RuntimeError(f"no decoding steps between {short} and {long} new tokens")
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(prompts, short)
        short_s = time.perf_counter() - started
        started = time.perf_counter()
        run(prompts, long)
        times.append((time.perf_counter() - started - short_s) * 1000 / steps)
    return {
        "ops_per_step": round((counts[1][1] - counts[0][1]) / steps, 1),
        "syncs_per_step": round((counts[1][2] - counts[0][2]) / steps, 2),
        "ms_per_step": round(statistics.median(times), 2),
        "ms_per_step_all": [round(t, 2) for t in times],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_engine_overhead", description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[2, 32])
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--short", type=int, default=8, help="new tokens of the short run")
    parser.add_argument("--long", type=int, default=40, help="new tokens of the long run")
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs of runs per side and row count")
    parser.add_argument("--models-dir", type=Path, default=Path(".draftdesk/bench-models/overhead-256"))
    args = parser.parse_args(argv)
    if not 0 < args.short < args.long:
        parser.error("--short must be positive and below --long")
    from transformers import AutoTokenizer

    print("building or reading the model…", file=sys.stderr)
    base, adapter = build_model(args.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    engine, reference = EngineSide(base, adapter), ReferenceSide(base, adapter)
    report: dict[str, Any] = {
        "benchmark": "bench_engine_overhead",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_description(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": {**SHAPE, "quantization": "nf4", "lora_rank": LORA_RANK, "lora_targets": "every linear"},
        "sampling": {**SAMPLING, "stop": list(STOP_SEQUENCES)},
        "new_tokens": [args.short, args.long],
        "rows": {},
        "goals": GOALS,
    }
    met = True
    for rows in args.rows:
        prompts = prompts_for(tokenizer, rows, args.prompt_tokens)
        engine.run(prompts, 2)  # warm-up: first-call set-up stays out of the figures
        reference.run(prompts, 2)
        print(f"{rows} rows…", file=sys.stderr)
        ours = per_step(engine.run, prompts, args.short, args.long, args.repeats)
        theirs = per_step(reference.run, prompts, args.short, args.long, args.repeats)
        ratios = {
            "ops": round(ours["ops_per_step"] / theirs["ops_per_step"], 3),
            "extra_syncs": round(ours["syncs_per_step"] - theirs["syncs_per_step"], 2),
            "ms": round(ours["ms_per_step"] / theirs["ms_per_step"], 3),
        }
        goals = {
            "ops": ratios["ops"] <= GOALS["ops_ratio_max"],
            "syncs": ratios["extra_syncs"] <= GOALS["extra_syncs_max"],
        }
        if rows >= 32:
            goals["ms"] = ratios["ms"] <= GOALS["ms_ratio_32_rows_max"]
        met = met and all(goals.values())
        report["rows"][str(rows)] = {
            "engine": ours,
            "reference": theirs,
            "ratios": ratios,
            "goals_met": goals,
        }
    report["all_goals_met"] = met
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
