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


# ---------------------------------------------------------------------- in GPU memory, nothing on disk


def in_memory_base(family: str, shape: str, device: str, seed: int = 0) -> tuple[Any, Any]:
    """A random-weight base of ``shape``, quantized to NF4 where it was made: (model, tokenizer).

    A 7B model is made in bf16 on the GPU in seconds and its linear layers quantized in place,
    instead of writing 13 GB to disk and reading them back (``DraftEngine.adopt_base`` serves it).
    """
    tokenizer = train_tokenizer(sample_corpus())
    dims = SHAPES[shape][family]
    tokenizer.model_max_length = dims.get("max_position_embeddings") or dims["n_positions"]
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(seed)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(_config(family, dims, ids), dtype=dtype)
    quantize_linears_nf4(model, dtype)
    model.generation_config = GenerationConfig(**ids)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return model.eval(), tokenizer


def quantize_linears_nf4(model: torch.nn.Module, compute_dtype: torch.dtype) -> None:
    """Every linear layer but the output head as a bitsandbytes NF4 layer, as ``from_pretrained``
    with a 4-bit ``BitsAndBytesConfig`` loads them (double quantization, ``compute_dtype``)."""
    import bitsandbytes as bnb

    output = model.get_output_embeddings()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or child is output:
                continue
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute_dtype,
                compress_statistics=True,
                quant_type="nf4",
                device="meta",
            )
            weight = bnb.nn.Params4bit(
                child.weight.data, requires_grad=False, quant_type="nf4", compress_statistics=True
            )
            layer.weight = weight.to(child.weight.device)  # quantizes on the way
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, name, layer)
            del child


def write_random_adapter(model: torch.nn.Module, folder: Path, rank: int = LORA_RANK, seed: int = 0) -> Path:
    """A LoRA adapter folder (PEFT's format) with random A and B for every linear layer of ``model``."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    output = model.get_output_embeddings()
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    leaves: set[str] = set()
    for name, module in model.named_modules():
        in_features, out_features = (
            getattr(module, "in_features", None),
            getattr(module, "out_features", None),
        )
        if module is output or not isinstance(in_features, int) or not isinstance(out_features, int):
            continue
        if not list(module.children()) or name.endswith(("_proj", "fc_in", "fc_out")):
            prefix = f"base_model.model.{name}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, in_features, generator=generator) * 0.02
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(out_features, rank, generator=generator) * 0.02
            leaves.add(name.rsplit(".", 1)[-1])
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()},
        folder / "adapter_model.safetensors",
    )
    config = LoraConfig(r=rank, lora_alpha=LORA_ALPHA, target_modules=sorted(leaves), task_type="CAUSAL_LM")
    config.save_pretrained(str(folder))
    return folder
