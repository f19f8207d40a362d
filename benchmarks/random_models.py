"""Random-weight models of the study's real shapes (LLaMa-2-7B, GPT-J-6B) with random LoRA adapters.

Decoding speed does not depend on the weights' values, so random weights of the real shapes give
the real speed without downloading anything. The tokenizer is the tiny one trained on local text:
prompts are built to an exact token count, and generated ids beyond its vocabulary decode to
nothing, which does not matter for speed. Models are written once under a cache folder and reused.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GenerationConfig, GPTJConfig, LlamaConfig, PretrainedConfig

from models.shapes import GPT_J_6B, LLAMA_2_7B
from models.tiny import build_demo_models, sample_corpus, train_tokenizer

SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "7b": {"llama": LLAMA_2_7B, "gptj": GPT_J_6B},
    # The same code path at a size a CPU builds in seconds (smoke runs of the 7b path).
    "mini": {
        "llama": {
            "hidden_size": 256,
            "intermediate_size": 688,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 1024,
            "vocab_size": 32000,
        },
        "gptj": {
            "n_embd": 256,
            "n_layer": 4,
            "n_head": 4,
            "rotary_dim": 32,
            "n_positions": 1024,
            "vocab_size": 50400,
        },
    },
}
LORA_RANK = 64  # QLoRA's 7B setting; alpha 16
LORA_ALPHA = 16


def _config(family: str, shape: dict[str, Any], ids: dict[str, int | None]) -> PretrainedConfig:
    if family == "llama":
        return LlamaConfig(**shape, **ids)
    return GPTJConfig(**shape, **ids)


def _linear_targets(model: torch.nn.Module) -> list[str]:
    output = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output
        }
    )


def _build_pair(root: Path, family: str, shape: dict[str, Any], device: str, seed: int) -> None:
    """Write ``{family}_base`` (bf16) and ``{family}_adapter`` (random LoRA, r=64) under ``root``."""
    from peft import LoraConfig, get_peft_model

    base_dir, adapter_dir = root / f"{family}_base", root / f"{family}_adapter"
    if base_dir.is_dir() and adapter_dir.is_dir():
        return
    tokenizer = train_tokenizer(sample_corpus())
    window = shape.get("max_position_embeddings") or shape["n_positions"]
    tokenizer.model_max_length = window
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(_config(family, shape, ids), dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(**ids)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{family}-") as tmp:
        model.save_pretrained(Path(tmp) / "base", max_shard_size="2GB")
        tokenizer.save_pretrained(Path(tmp) / "base")
        lora = LoraConfig(
            r=LORA_RANK,
            lora_alpha=LORA_ALPHA,
            target_modules=_linear_targets(model),
            lora_dropout=0.0,
            init_lora_weights=False,  # random A and B: an adapter that changes nothing is no test
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, lora)
        peft_model.save_pretrained(Path(tmp) / "adapter")
        del peft_model, model
        os.replace(Path(tmp) / "base", base_dir)
        os.replace(Path(tmp) / "adapter", adapter_dir)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def build_models(shape: str, root: Path, device: str) -> dict[str, Path]:
    """Paths of ``llama_base``, ``llama_adapter``, ``gptj_base``, ``gptj_adapter`` for ``shape``."""
    root = Path(root) / shape
    root.mkdir(parents=True, exist_ok=True)
    if shape == "tiny":
        return build_demo_models(root)
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: use tiny, {', '.join(SHAPES)}")
    # Random initialisation of 7B parameters is slow on a CPU; on the GPU it takes seconds.
    for seed, family in enumerate(("llama", "gptj")):
        _build_pair(root, family, SHAPES[shape][family], device, seed)
    return {f"{f}_{kind}": root / f"{f}_{kind}" for f in ("llama", "gptj") for kind in ("base", "adapter")}
