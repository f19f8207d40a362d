"""Each row's own sampling inside one decoding step: greedy or sampled, all on the device.

One batch mixes models with different temperature, top-p, repetition penalty and seed.
``RowSampling`` holds those settings as tensors, built once per ``generate`` call, and
``choose`` picks every row's next token from the step's logits with a fixed sequence of tensor
operations: no Python loop over rows, no ``.item()``, no host copy, so the step can be compiled
into one CUDA graph.

Sampling draws by inverse transform: each sampled row gets one uniform number per step, drawn
before decoding starts from the row's own generator (``seed``, or a fresh random seed), and takes
the token where the cumulative probability of its (temperature-scaled, top-p-cut) distribution
passes that number. A seeded row therefore writes the same draft whatever other rows share its
batch, and nothing random happens inside the step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowSettings:
    """What one batch row asks of the sampler."""

    temperature: float  # 0: greedy
    top_p: float
    repetition_penalty: float  # 1: none
    seed: int | None
    ignore_eos: bool = False  # never end on an end token (benchmarks: fixed lengths)


class RowSampling:
    """Per-row sampling settings of one generate call, as device tensors."""

    def __init__(
        self,
        rows: Sequence[RowSettings],
        steps: int,
        vocab_size: int,
        end_ids: Collection[int],
        device: torch.device | str,
    ) -> None:
        sampled = [row.temperature > 0 for row in rows]
        self.any_sampled = any(sampled)
        self.all_sampled = all(sampled)
        self.any_penalty = any(row.repetition_penalty != 1.0 for row in rows)
        self.any_top_p = any(s and row.top_p < 1.0 for row, s in zip(rows, sampled, strict=True))
        banned_rows = [i for i, row in enumerate(rows) if row.ignore_eos]
        self.any_banned = bool(banned_rows and end_ids)

        def column(values: Sequence[float | bool], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype).unsqueeze(1).to(device)

        self.sampled = column(sampled, torch.bool)
        self.temperature = column(
            [r.temperature if s else 1.0 for r, s in zip(rows, sampled, strict=True)], torch.float32
        )
        self.top_p = column(
            [r.top_p if s else 1.0 for r, s in zip(rows, sampled, strict=True)], torch.float32
        )
        self.penalty = column([r.repetition_penalty for r in rows], torch.float32)
        self.inverse_penalty = 1.0 / self.penalty
        banned = torch.zeros(len(rows), vocab_size, dtype=torch.bool)
        for end in end_ids:
            if 0 <= end < vocab_size:
                banned[banned_rows, end] = True
        self.banned = banned.to(device)
        self.uniforms = draw_uniforms(rows, steps).to(device)  # [rows, steps]

    def choose(
        self, logits: torch.Tensor, history: torch.Tensor | None, uniform: torch.Tensor
    ) -> torch.Tensor:
        """Every row's next token, ``[rows, 1]``: ``logits`` [rows, vocab], ``uniform`` [rows, 1] this
        step's draws, ``history`` [rows, length] each row's tokens so far (repetition penalty; a
        slot not filled yet repeats one of the row's tokens, so it penalises nothing new).

        Operations are counted here: each is a kernel launch on a GPU (see bench_engine_overhead).
        """
        scores = logits.float()
        if self.any_banned:
            scores = scores.masked_fill(self.banned, -math.inf)
        if self.any_penalty and history is not None:
            # HF's repetition penalty: a seen token's positive score divided, a negative one multiplied
            # (a row without penalty multiplies by 1). Over the row's tokens, not the vocabulary.
            seen = scores.gather(1, history)
            seen = seen * torch.where(seen < 0, self.penalty, self.inverse_penalty)
            scores = scores.scatter(1, history, seen)
        if not self.any_sampled:
            return scores.argmax(-1, keepdim=True)
        ordered, order = torch.sort(scores / self.temperature, dim=-1, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        # Keep the most likely tokens until their mass reaches top_p: up to the first whose
        # cumulative probability does (the last one when float sums stop short of top_p = 1).
        last_kept = torch.searchsorted(cumulative, self.top_p).clamp_(max=cumulative.shape[-1] - 1)
        mass = cumulative.gather(1, last_kept)
        # Inverse transform: the first token whose cumulative probability reaches uniform × mass.
        sampled = order.gather(1, torch.searchsorted(cumulative, uniform * mass))
        if self.all_sampled:
            return sampled
        return torch.where(self.sampled, sampled, scores.argmax(-1, keepdim=True))


def draw_uniforms(rows: Sequence[RowSettings], steps: int) -> torch.Tensor:
    """``[rows, steps]`` uniform draws: a seeded row's from its seed alone, the others' fresh."""
    draws = torch.zeros(len(rows), max(steps, 1), dtype=torch.float32)
    for i, row in enumerate(rows):
        if row.temperature > 0:
            seed = row.seed if row.seed is not None else random.SystemRandom().getrandbits(63)
            draws[i] = torch.rand(max(steps, 1), generator=torch.Generator().manual_seed(seed))
    return draws
