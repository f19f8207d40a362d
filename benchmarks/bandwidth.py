"""The memory-bandwidth limit of decoding (docs/performance.md, "The bandwidth arithmetic").

Each decoding step of a batch reads every weight of the base once (NF4 packed weights with their
quantization state, the bf16 norms and output head, the LoRA weights), plus each row's KV cache.
The input embedding is not counted: a step reads only one row of it per sequence. So for a batch
of B rows with prompt length P, step t reads ``W + B * (P + t) * kv`` bytes, and no GPU can
decode faster than its peak bandwidth divided by that. Prefill is compute-bound and not counted,
so the measured time (which includes it) makes the fraction a slight underestimate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _quant_state_bytes(state: Any) -> int:
    total = 0
    for name in ("absmax", "code"):
        tensor = getattr(state, name, None)
        if isinstance(tensor, torch.Tensor):
            total += tensor.numel() * tensor.element_size()
    nested = getattr(state, "state2", None)
    if nested is not None:
        total += _quant_state_bytes(nested)
    return total


def weight_bytes_per_step(model: torch.nn.Module) -> int:
    """Bytes of weights one decoding step reads: everything but the input embedding table.

    Counted per storage, so views (the engine's per-row LoRA views, expanded over the rows
    without a copy) count once, as the memory they read.
    """
    embedding = model.get_input_embeddings()
    output = model.get_output_embeddings()
    skip = set()
    if embedding is not None and (output is None or output.weight is not embedding.weight):
        skip.add(embedding.weight.untyped_storage().data_ptr())
    total = 0
    seen: set[int] = set()
    for tensor in [*model.parameters(), *model.buffers()]:
        storage = tensor.untyped_storage()
        if storage.data_ptr() in skip or storage.data_ptr() in seen:
            continue
        seen.add(storage.data_ptr())
        total += storage.nbytes()  # NF4: packed uint8, two weights a byte
        state = getattr(tensor, "quant_state", None)
        if state is not None:
            total += _quant_state_bytes(state)
    return total


def kv_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """KV cache bytes one token of one sequence takes (keys and values, every layer)."""
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return 2 * layers * kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


def bound_seconds(
    weight_bytes: int,
    kv_bytes: int,
    batch_sizes: Sequence[int],
    prompt_tokens: int,
    new_tokens: int,
    bandwidth: float,
) -> float:
    """The least time the decoding steps of these ``generate()`` calls can take at ``bandwidth`` B/s."""
    seconds = 0.0
    for rows in batch_sizes:
        # Sum over steps t = 1..N of W + rows * (P + t) * kv.
        kv_total = rows * kv_bytes * (new_tokens * prompt_tokens + new_tokens * (new_tokens + 1) / 2)
        seconds += (new_tokens * weight_bytes + kv_total) / bandwidth
    return seconds
