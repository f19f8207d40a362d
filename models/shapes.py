"""The study's real model shapes, from the Hub configs of meta-llama/Llama-2-7b-hf and
EleutherAI/gpt-j-6b: the parts that set the sizes. Benchmarks build random-weight models from
them (speed does not depend on the weights' values), so nothing is downloaded."""

from __future__ import annotations

from typing import Any

LLAMA_2_7B: dict[str, Any] = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
    "vocab_size": 32000,
    "rms_norm_eps": 1e-5,
}

GPT_J_6B: dict[str, Any] = {
    "n_embd": 4096,
    "n_layer": 28,
    "n_head": 16,
    "rotary_dim": 64,
    "n_positions": 2048,
    "vocab_size": 50400,
}
