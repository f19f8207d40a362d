"""Loading a base model for QLoRA and finding its LoRA targets, for any causal-LM family.

LoRA goes on every linear layer but the output head (the QLoRA paper's "all linear layers"), found
by walking the model rather than from a list per family: LLaMA's ``q_proj … down_proj`` and
GPT-J's ``q_proj, k_proj, v_proj, out_proj, fc_in, fc_out`` come out of the same code, and so
does any other family. 4-bit layers from bitsandbytes are ``torch.nn.Linear`` subclasses and
GPT-2-style models use ``Conv1D``; both count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from finetune.config import TrainConfig
from models.engine import hub_model_downloaded

log = logging.getLogger(__name__)


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(choice: str) -> torch.dtype:
    """bf16 where the GPU supports it, fp16 on older GPUs, fp32 on the CPU (unless chosen)."""
    if choice != "auto":
        return getattr(torch, choice)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quantization_config(config: TrainConfig, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    if config.quantization == "none":
        return None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quantization,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=dtype,
    )


def find_lora_targets(model: torch.nn.Module) -> list[str]:
    """Leaf names of the linear layers, without the output head (and any module sharing its name)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if module is output}
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | Conv1D) and module is not output
    }
    targets = sorted(names - head_names)
    if not targets:
        raise ValueError("no linear layers found for LoRA: set target_modules in [models.finetune]")
    return targets


@dataclass
class LoadedBase:
    model: Any
    tokenizer: PreTrainedTokenizerBase
    dtype: torch.dtype
    device: str


class BaseModelError(RuntimeError):
    """The base model could not be loaded; says what to fix."""


def keep_4bit_layers_trainable(model: torch.nn.Module) -> int:
    """Keep every 4-bit layer in the layout that backpropagates; returns how many were repacked.

    On a CPU with AVX512-BF16, bitsandbytes (0.49 and later) converts a ``Linear4bit`` in place and
    for good to a CPU inference layout the first time it runs in eval mode on an input without
    grad, e.g. in the trainer's evaluation pass. Later training steps then go through ``gemv_4bit``,
    which has no backward: gradients stop flowing through the frozen 4-bit layers to the adapters
    below them, and layers with a bias (GPT-J) fail on an in-place add. Training and evaluation
    measurements must see the same weights on every machine, so the layout is switched off here
    and any layer already converted is converted back. The draft engine (inference only) keeps it.
    """
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    repacked = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        if getattr(weight.quant_state, "packing_format_for_cpu", False):
            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                weight.data, weight.quant_state
            )
            repacked += 1
    return repacked


def adapters_in_float32(model: torch.nn.Module) -> int:
    """Put trainable (LoRA) weights held in bfloat16 or float16 back in float32; returns how many.

    TRL's SFTTrainer casts a quantized model's adapter weights to bfloat16 (the QLoRA paper's choice
    on GPUs). On a CPU every LoRA matmul then runs in emulated bfloat16: a training step through TRL
    took about twice as long (0.65 s instead of 0.35 s on the demo's models) and the updates are
    rounded to 8 bits of mantissa. Called on the CPU only; GPUs keep TRL's choice.
    """
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
            cast += 1
    return cast


def packed_for_cpu_inference(model: torch.nn.Module) -> list[str]:
    """Names of the 4-bit layers now in bitsandbytes' CPU inference layout (none while training)."""
    return [
        name
        for name, module in model.named_modules()
        if getattr(
            getattr(getattr(module, "weight", None), "quant_state", None), "packing_format_for_cpu", False
        )
    ]


def _base_path(base_model: str) -> str:
    """The local folder or downloaded hub id of ``base_model``; BaseModelError says how to get it."""
    where = Path(base_model).expanduser()
    if not where.exists() and not hub_model_downloaded(base_model):
        raise BaseModelError(
            f"base model {base_model!r} is neither a local folder nor downloaded: run `hf download "
            f"{base_model}` (gated models such as LLaMa-2: accept the licence and export HF_TOKEN first), "
            "or set base_model in [[models]] to a local path"
        )
    return str(where) if where.exists() else base_model


def load_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    """The base model's tokenizer alone: to count a dataset's tokens before the model is loaded."""
    path = _base_path(base_model)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise BaseModelError(
            f"base model {base_model!r}: no tokenizer there: set base_model in [[models]] to a local path "
            f"or a hub id you have downloaded ({exc})"
        ) from exc


def load_base(base_model: str, config: TrainConfig) -> LoadedBase:
    """The base model (4-bit unless ``quantization = "none"``) and its tokenizer, ready for LoRA.

    Its 4-bit layers stay in the trainable layout on every CPU (``keep_4bit_layers_trainable``),
    so training, the trainer's evaluation passes and ``finetune eval`` see the same weights.
    """
    path = _base_path(base_model)
    dtype = compute_dtype(config.compute_dtype)
    target = device()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            quantization_config=quantization_config(config, dtype),
            dtype=dtype,
            device_map={"": 0} if target == "cuda" else "cpu",
        )
    except OSError as exc:
        raise BaseModelError(
            f"base model {base_model!r} not found: set base_model in [[models]] to a local path or a hub id "
            f"you have downloaded ({exc})"
        ) from exc
    except ImportError as exc:
        raise BaseModelError(
            f"base model {base_model!r}: a library for quantization={config.quantization!r} is missing "
            f"(install bitsandbytes, or set quantization = 'none' in [models.finetune]): {exc}"
        ) from exc
    if tokenizer.pad_token_id is None:  # LLaMa-2 and GPT-J ship without a pad token
        tokenizer.pad_token = tokenizer.eos_token
    if config.quantization != "none":
        keep_4bit_layers_trainable(model)
    return LoadedBase(model=model, tokenizer=tokenizer, dtype=dtype, device=target)
