"""Per-row sampling settings and stop conditions inside one ``generate()`` batch.

``generate()`` takes one temperature / top-p / repetition penalty / max_new_tokens for the whole
batch. The engine decodes greedily and puts ``RowSampler`` in front: it applies each row's own
settings (vectorised over the batch, so a batch of 32 costs about what a batch of 1 does) and
samples each sampled row, turning its scores into a one-hot choice that the greedy step then
takes. ``RowStop`` ends each row at its own max_new_tokens or stop strings.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase, StoppingCriteria

from models.cleanup import find_stop
from models.spec import ModelSpec


class RowSampler(LogitsProcessor):
    """Applies each row's repetition penalty, temperature and top-p, and samples the row.

    A sampled row leaves this processor with a single finite score (its sampled token), so the
    greedy argmax takes exactly that token; greedy rows keep their (penalised) scores. Seeded rows
    each draw from their own generator, so their output does not depend on the other rows.
    Rows with ``ignore_eos`` never end on eos (benchmarks: fixed output lengths).
    """

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        prompt_starts: Sequence[int],
        ignore_eos: Sequence[bool] = (),
        eos_ids: Collection[int] = (),
    ) -> None:
        self.specs = list(specs)
        self.starts = list(prompt_starts)  # index of each row's first real (non-pad) token
        self.ignore_eos = list(ignore_eos) or [False] * len(self.specs)
        self.eos_ids = sorted(eos_ids)
        self._tensors: dict[str, torch.Tensor] | None = None
        self.generators: list[torch.Generator | None] = []
        self.seeded: list[tuple[int, torch.Generator]] = []
        self.any_sampled = self.any_penalty = self.any_top_p = False

    def _setup(self, device: torch.device) -> dict[str, torch.Tensor]:
        """Per-row settings as tensors, built once: no host-device copy or sync at each step."""
        specs = self.specs
        sampled = [spec.temperature > 0 for spec in specs]
        self.generators = [
            torch.Generator(device=device).manual_seed(spec.seed)
            if spec.seed is not None and is_sampled
            else None
            for spec, is_sampled in zip(specs, sampled, strict=True)
        ]
        self.any_sampled = any(sampled)
        self.any_penalty = any(spec.repetition_penalty != 1.0 for spec in specs)
        self.any_top_p = any(s and spec.top_p < 1.0 for spec, s in zip(specs, sampled, strict=True))
        self.seeded = [(i, g) for i, g in enumerate(self.generators) if g is not None]
        unseeded = [
            i for i, (s, g) in enumerate(zip(sampled, self.generators, strict=True)) if s and g is None
        ]
        no_eos = [i for i, flag in enumerate(self.ignore_eos) if flag] if self.eos_ids else []

        def column(values: Sequence[float | int | bool], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)

        def index(values: Sequence[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        return {
            "penalty": column([spec.repetition_penalty for spec in specs], torch.float32),
            "temperature": column(
                [spec.temperature if s else 1.0 for spec, s in zip(specs, sampled, strict=True)],
                torch.float32,
            ),
            "top_p": column([spec.top_p for spec in specs], torch.float32),
            "use_top_p": column(
                [s and spec.top_p < 1.0 for spec, s in zip(specs, sampled, strict=True)], torch.bool
            ),
            "sampled": column(sampled, torch.bool),
            "starts": column(self.starts, torch.long),
            "unseeded": index(unseeded),
            "no_eos_rows": index(no_eos).unsqueeze(1),
            "eos": index(self.eos_ids).unsqueeze(0),
        }

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._tensors is None:
            self._tensors = self._setup(scores.device)
        t = self._tensors
        out = scores.float()
        if t["no_eos_rows"].numel():
            out = out.clone()  # scores may already be float32: do not write into the caller's tensor
            out[t["no_eos_rows"], t["eos"]] = -math.inf
        if self.any_penalty:
            out = self._penalise(input_ids, out, t)
        if not self.any_sampled:
            return out.to(scores.dtype)
        sampled = t["sampled"]
        out = torch.where(sampled, out / t["temperature"], out)
        if self.any_top_p:
            sorted_scores, order = torch.sort(out, dim=-1, descending=True)
            probs = sorted_scores.softmax(-1)
            # Drop tokens once the mass before them already reaches top_p (the first always stays).
            drop_sorted = (probs.cumsum(-1) - probs) >= t["top_p"]
            drop = drop_sorted.scatter(1, order, drop_sorted) & t["use_top_p"]
            out = out.masked_fill(drop, -math.inf)
        probs = out.softmax(-1)
        tokens = torch.zeros(out.shape[0], dtype=torch.long, device=out.device)
        if t["unseeded"].numel():
            tokens[t["unseeded"]] = torch.multinomial(probs[t["unseeded"]], 1).squeeze(1)
        for i, generator in self.seeded:
            tokens[i] = torch.multinomial(probs[i], 1, generator=generator)[0]
        one_hot = torch.full_like(out, -math.inf).scatter(1, tokens.unsqueeze(1), 0.0)
        out = torch.where(sampled, one_hot, out)
        return out.to(scores.dtype)

    @staticmethod
    def _penalise(input_ids: torch.Tensor, scores: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        """HF's repetition penalty per row, over the row's real tokens only (not the left padding)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        real = (positions >= t["starts"]).to(scores.dtype)
        seen = torch.zeros_like(scores).scatter_add_(1, input_ids, real) > 0
        penalty = t["penalty"]
        penalised = torch.where(scores < 0, scores * penalty, scores / penalty)
        return torch.where(seen & (penalty != 1.0), penalised, scores)


class RowStop(StoppingCriteria):
    """Per-row stop: the row's own max_new_tokens, or one of its stop strings in the new text."""

    def __init__(
        self, specs: Sequence[ModelSpec], prompt_length: int, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        self.specs = list(specs)
        self.prompt_length = prompt_length
        self.tokenizer = tokenizer
        self.limits: torch.Tensor | None = None
        self.stop_rows = [i for i, spec in enumerate(self.specs) if spec.stop]
        # Decoding a tail of this many tokens is enough to see any stop string (each token is at
        # least one character, or part of one).
        self.tail = max((len(s) for spec in self.specs for s in spec.stop), default=0) + 4

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.limits is None:
            self.limits = torch.tensor([spec.max_new_tokens for spec in self.specs], device=input_ids.device)
        new_tokens = input_ids.shape[1] - self.prompt_length
        done = self.limits <= new_tokens
        if self.stop_rows and new_tokens > 0:
            start = max(self.prompt_length, input_ids.shape[1] - self.tail)
            tails = self.tokenizer.batch_decode(
                input_ids[self.stop_rows, start:].tolist(), skip_special_tokens=True
            )
            hits = [
                i
                for i, tail in zip(self.stop_rows, tails, strict=True)
                if find_stop(tail, self.specs[i].stop)
            ]
            if hits:
                done = done.clone()
                done[hits] = True
        return done
