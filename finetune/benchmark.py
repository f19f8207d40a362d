"""QLoRA training speed and memory on a model of a real shape: ``python -m finetune.benchmark``.

Speed does not depend on the weights' values, so the benchmark builds a model with random weights
in the shape of LLaMa-2-7B or GPT-J-6B (no download, no licence), prepares the bundled sample
data set, and runs the real ``train_adapter`` (NF4 + LoRA through TRL's SFTTrainer, the QLoRA
defaults from config) for a few steps. It prints one JSON object: tokens per second (non-padding
tokens the trainer saw), peak GPU memory, the device and the settings. The ``tiny-*`` shapes run
in seconds on a CPU and exist to keep this script working.

    python -m finetune.benchmark --shape llama-7b --steps 20 --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from finetune.config import ExportConfig, PrepareConfig, TrainConfig
from finetune.export import export_zendesk
from finetune.prepare import prepare_dataset
from finetune.sample import SAMPLE_EMAIL, SAMPLE_PRODUCT, SAMPLE_TOKEN, load_sample, sample_zendesk
from finetune.train import train_adapter
from models.shapes import GPT_J_6B, LLAMA_2_7B

SHAPES: dict[str, dict[str, Any]] = {
    "llama-7b": {"family": "llama", **LLAMA_2_7B},
    "gptj-6b": {"family": "gptj", **GPT_J_6B},
    "tiny-llama": {"family": "llama", "tiny": True},
    "tiny-gptj": {"family": "gptj", "tiny": True},
}


def build_model(shape: str, out_dir: Path) -> Path:
    """A random-weight model of ``shape`` (bf16 on disk) with a tokenizer trained on the sample."""
    import torch
    from transformers import AutoModelForCausalLM, GPTJConfig, LlamaConfig

    from models.tiny import build_tiny_model, train_tokenizer

    if (out_dir / "config.json").is_file():
        return out_dir
    sample = load_sample()
    texts = [c["body"] for comments in sample.comments.values() for c in comments]
    tokenizer = train_tokenizer(texts + [a["body"] for a in sample.articles])
    spec = dict(SHAPES[shape])
    family = spec.pop("family")
    if spec.pop("tiny", False):
        return build_tiny_model(out_dir, family, tokenizer)
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = LlamaConfig(**spec, **ids) if family == "llama" else GPTJConfig(**spec, **ids)
    tokenizer.model_max_length = spec.get("max_position_embeddings") or spec.get("n_positions")
    # Random initialisation of 7B parameters takes minutes on a CPU and seconds on a GPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out_dir, max_shard_size="2GB")
    del model
    tokenizer.save_pretrained(out_dir)
    return out_dir


def run_benchmark(shape: str, steps: int, workdir: Path, config: TrainConfig | None = None) -> dict[str, Any]:
    """Train ``steps`` steps on the ``shape`` model; the speed and memory figures."""
    workdir = Path(workdir)
    base = build_model(shape, workdir / f"model-{shape}")
    dataset = workdir / "dataset"
    if not (dataset / "card.json").is_file():
        with sample_zendesk() as zendesk:
            from integrations.zendesk import ZendeskGateway

            gateway = ZendeskGateway.from_settings(zendesk.url, SAMPLE_EMAIL, SAMPLE_TOKEN)
            export_zendesk(gateway, workdir / "export", ExportConfig(requests_per_minute=0), progress=False)
        prepare_dataset(workdir / "export", dataset, PrepareConfig(), SAMPLE_PRODUCT, progress=False)
    config = replace(config or TrainConfig(), max_steps=steps, save_steps=10 * steps, logging_steps=1)
    result = train_adapter(shape, str(base), dataset, workdir / "adapters", config, fresh=True)
    metrics = result.manifest["metrics"]
    return {
        "shape": shape,
        "steps": metrics["global_step"],
        "tokens_per_second": metrics["tokens_per_second"],
        "tokens_seen": metrics["tokens_seen"],
        "train_runtime_s": metrics["train_runtime_s"],
        "peak_gpu_memory_gib": metrics["peak_gpu_memory_gib"],
        "device": result.manifest["effective"]["device"],
        "cpu": result.manifest["effective"]["cpu"],
        "compute_dtype": result.manifest["effective"]["compute_dtype"],
        "optimizer": result.manifest["effective"]["optimizer"],
        "batch_size": config.per_device_train_batch_size,
        "max_length": config.max_length,
        "lora_r": config.lora_r,
        "gradient_checkpointing": config.gradient_checkpointing,
        "libraries": result.manifest["libraries"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-7b")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, help="per-device batch (default: the QLoRA default, 16)")
    parser.add_argument("--workdir", type=Path, default=Path(".draftdesk/benchmark"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config = TrainConfig()
    if args.batch_size:
        config = replace(config, per_device_train_batch_size=args.batch_size)
    print(json.dumps(run_benchmark(args.shape, args.steps, args.workdir, config), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
