"""The decoding loop of one base model: a static KV cache and one step with no host work.

``generate()`` of transformers spends each step in Python: it rebuilds inputs, runs every logits
processor and stopping criterion and asks the device whether all rows are done, a round trip that
stalls the GPU at every token. ``Decoder`` runs its own loop instead:

* the prompt rows go through the model once (prefill, eager), into a ``StaticCache`` whose shape
  does not change while the rows decode;
* every decoding step is one function of device tensors only (``_decode_step``): the model's
  forward for one token per row, each row's sampling (``RowSampling``), its stop conditions
  (end token, its own token limit, its stop strings matched on token ids by transformers'
  ``StopStringCriteria``) and the bookkeeping, all updating tensors in place;
* the host looks at the device only every ``check_every`` steps, to stop once every row is done.

On CUDA, with ``compile``, the step is compiled with ``torch.compile(mode="reduce-overhead")``:
CUDA graphs replay a whole step as one launch. Shapes must then stay fixed, so the rows are padded
to a batch bucket (powers of two) and the cache length to a length bucket; the first shape
compiles, the second recompiles with dynamic sizes (PyTorch's automatic dynamic shapes), and every
bucket records its CUDA graphs on first use (the time is counted in ``compile_seconds``) and keeps
its cache and state buffers, whose addresses the graphs hold. On the CPU, or with ``compile`` off,
the same step runs eagerly on exactly the rows given.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase, StaticCache, StopStringCriteria

from models.batched_lora import LoraRouter
from models.sampling import RowSampling, RowSettings

log = logging.getLogger(__name__)

CHECK_EVERY = 8  # steps between two looks at "are all rows done" (one device sync each)
LENGTH_BUCKET = 256  # cache lengths are rounded up to a multiple of this when compiled


@dataclass(frozen=True)
class DecodeRow(RowSettings):
    """One prompt row: its sampling settings, token limit, stop strings and adapter."""

    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    adapter: int = -1  # LoraRouter index; -1: the untuned base


@dataclass
class DecodeStats:
    """Counters for tests, benchmarks and logs."""

    steps: int = 0  # decoding steps run (the prefill not included)
    compiled_buckets: list[tuple[int, int]] = field(default_factory=list)  # (rows, cache length)
    compile_seconds: float = 0.0  # time spent in first calls of compiled buckets


@dataclass
class _State:
    """The device tensors one decoding step reads and updates in place."""

    last_token: torch.Tensor  # [rows, 1]
    positions: torch.Tensor  # [rows, 1] position id of the last token fed to the model
    mask: torch.Tensor  # [rows, cache length] 1 for real tokens (and every generated slot)
    done: torch.Tensor  # [rows, 1] bool
    cursor: torch.Tensor  # [rows, 1] cache slot of the next token: prompt length + tokens so far
    limits: torch.Tensor  # [rows, 1] the slot each row stops before: prompt length + max_new_tokens
    history: torch.Tensor  # [rows, cache length] the prompt, then the generated tokens, slot by slot
    tail: torch.Tensor  # [rows, window] the last tokens, for stop strings
    uniforms: torch.Tensor  # [rows, cache length] each row's draw for the token of each slot


class Decoder:
    """Generates token ids for rows of one base model (with its LoRA adapters)."""

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        router: LoraRouter | None,
        end_ids: Collection[int],
        compile_step: bool = False,
        max_rows: int = 64,
        compile_backend: str = "inductor",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.router = router
        self.end_ids = sorted(end_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_ids[0]
        self.device = model.device
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.compile_step = compile_step
        self.max_rows = max_rows
        self.stats = DecodeStats()
        self._stop_criteria: dict[tuple[str, ...], StopStringCriteria] = {}
        self._slots: dict[tuple[int, int], tuple[StaticCache, _State]] = {}
        self._end = torch.tensor(self.end_ids, device=self.device)
        self._step: Callable[..., None] = self._decode_step
        if compile_step:
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            # CUDA graphs ("reduce-overhead") with inductor; tests trace the same step on the CPU
            # with the eager backend (fullgraph: a graph break is an error, not a slow step).
            mode = "reduce-overhead" if compile_backend == "inductor" else None
            self._step = torch.compile(
                self._decode_step, backend=compile_backend, mode=mode, fullgraph=True, dynamic=None
            )

    # ------------------------------------------------------------------ public

    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: Sequence[DecodeRow]
    ) -> list[list[int]]:
        """The new tokens of every row (left-padded ``input_ids``), each cut at its end, limit or stop."""
        real_rows, prompt_length = input_ids.shape
        steps = max(row.max_new_tokens for row in rows)
        if self.compile_step:
            input_ids, attention_mask, rows = self._pad_rows(input_ids, attention_mask, list(rows))
        batch = input_ids.shape[0]
        length = prompt_length + steps
        if self.compile_step:
            length = math.ceil(length / LENGTH_BUCKET) * LENGTH_BUCKET
        sampling = RowSampling(rows, steps, self.vocab_size, self.end_ids, self.device)
        stops = self._stops_for(rows)
        cache, state = self._slot(batch, length, stops)
        self._fill(state, input_ids, attention_mask, rows, sampling)
        if self.router is not None:
            self.router.route(torch.tensor([row.adapter for row in rows], device=self.device))
        logits = self.model(
            input_ids=input_ids,
            attention_mask=state.mask,
            position_ids=(attention_mask.cumsum(-1) - 1).clamp_(min=0),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits[:, -1]
        self._advance(logits, state, sampling, stops)
        first_call = self.compile_step and (batch, length) not in self.stats.compiled_buckets
        started = time.perf_counter()
        for step in range(1, steps):
            self._step(cache, state, sampling, stops)
            self.stats.steps += 1
            if step == 1 and first_call:
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                self._compiled(batch, length, time.perf_counter() - started)
            if step % CHECK_EVERY == 0 and bool(state.done.all()):
                break
        out = state.history[:real_rows, prompt_length : prompt_length + steps].tolist()
        return [self._completion(tokens, row) for tokens, row in zip(out, rows, strict=False)]

    def release(self) -> None:
        """Drop the kept caches (after an out-of-memory error, or when the engine closes)."""
        self._slots.clear()

    # ------------------------------------------------------------------ the step

    def _decode_step(
        self,
        cache: StaticCache,
        state: _State,
        sampling: RowSampling,
        stops: list[tuple[StopStringCriteria, torch.Tensor]],
    ) -> None:
        logits = self.model(
            input_ids=state.last_token,
            attention_mask=state.mask,
            position_ids=state.positions,
            cache=cache,
            use_cache=True,
        ).logits[:, -1]
        self._advance(logits, state, sampling, stops)

    def _advance(
        self,
        logits: torch.Tensor,
        state: _State,
        sampling: RowSampling,
        stops: list[tuple[StopStringCriteria, torch.Tensor]],
    ) -> None:
        """Choose each row's token from ``logits`` and update the state, on the device only.

        Every operation here runs at every step (a kernel launch each on a GPU): keep them few.
        A row that is done writes padding; a row allowed to end can only end on an end token
        (rows with ``ignore_eos`` never sample one), so padding marks where each row ended.
        """
        history = state.history if sampling.any_penalty else None
        token = sampling.choose(logits, history, state.uniforms.gather(1, state.cursor))
        token = token.masked_fill_(state.done, self.pad_id)
        state.history.scatter_(1, state.cursor, token)
        state.cursor.add_(1)
        finished = (token == self._end).any(1, keepdim=True)
        finished |= state.cursor >= state.limits
        if stops:
            state.tail.copy_(torch.cat([state.tail[:, 1:], token], dim=1))
            for criteria, rows_with_stops in stops:
                finished |= criteria(state.tail, None).unsqueeze(1) & rows_with_stops
        state.done |= finished
        state.last_token.copy_(token)
        state.positions.add_(1)

    # ------------------------------------------------------------------ set-up per call

    def _stops_for(self, rows: Sequence[DecodeRow]) -> list[tuple[StopStringCriteria, torch.Tensor]]:
        """One matcher per distinct set of stop strings, with the rows that use it."""
        found = []
        for stop in sorted({row.stop for row in rows if row.stop}):
            criteria = self._stop_criteria.get(stop)
            if criteria is None:
                criteria = self._stop_criteria[stop] = StopStringCriteria(self.tokenizer, list(stop))
                criteria.embedding_vec = criteria.embedding_vec.to(self.device)
            which = torch.tensor([[row.stop == stop] for row in rows], device=self.device)
            found.append((criteria, which))
        return found

    def _slot(
        self, batch: int, length: int, stops: list[tuple[StopStringCriteria, torch.Tensor]]
    ) -> tuple[StaticCache, _State]:
        """The cache and state buffers for this shape: kept per bucket when compiled, new otherwise."""
        window = max((criteria.maximum_token_len for criteria, _ in stops), default=1)
        key = (batch, length)
        kept = self._slots.get(key)
        if kept is not None and kept[1].tail.shape[1] >= window:
            cache = kept[0]
            cache.reset()
            return kept
        cache = StaticCache(config=self.model.config, max_cache_len=length)
        device = self.device

        def zeros(*shape: int, dtype: torch.dtype = torch.long) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        state = _State(
            last_token=zeros(batch, 1),
            positions=zeros(batch, 1),
            mask=zeros(batch, length),
            done=zeros(batch, 1, dtype=torch.bool),
            cursor=zeros(batch, 1),
            limits=zeros(batch, 1),
            history=zeros(batch, length),
            tail=zeros(batch, window),
            uniforms=zeros(batch, length, dtype=torch.float32),
        )
        if self.compile_step:
            for tensor in vars(state).values():
                torch._dynamo.mark_static_address(tensor)
            self._slots[key] = (cache, state)
        return cache, state

    def _fill(
        self,
        state: _State,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        rows: Sequence[DecodeRow],
        sampling: RowSampling,
    ) -> None:
        """This call's values into the state buffers (in place: compiled steps hold their addresses)."""
        prompt_length = input_ids.shape[1]
        device = self.device
        state.mask.fill_(1)
        state.mask[:, :prompt_length].copy_(attention_mask)
        state.positions.copy_(attention_mask.sum(-1, keepdim=True) - 1)  # the last prompt token's
        state.done.fill_(False)
        state.cursor.fill_(prompt_length)
        limits = [[prompt_length + row.max_new_tokens] for row in rows]
        state.limits.copy_(torch.tensor(limits, device=device))
        # The prompt, its left padding replaced by the row's first real token and the slots still
        # to come by its last one: the repetition penalty then sees the row's own tokens only.
        first_real = input_ids.gather(1, (attention_mask == 0).sum(-1, keepdim=True))
        state.history.copy_(input_ids[:, -1:].expand_as(state.history))
        state.history[:, :prompt_length].copy_(torch.where(attention_mask.bool(), input_ids, first_real))
        state.tail.fill_(self.pad_id)  # padding: stop strings match the new text only
        state.uniforms.zero_()
        state.uniforms[:, prompt_length : prompt_length + sampling.uniforms.shape[1]].copy_(sampling.uniforms)

    def _pad_rows(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: list[DecodeRow]
    ) -> tuple[torch.Tensor, torch.Tensor, list[DecodeRow]]:
        """Pad the batch to its bucket (a power of two) with one-token rows of the untuned base."""
        real = input_ids.shape[0]
        bucket = 1 << (real - 1).bit_length()
        if bucket == real:
            return input_ids, attention_mask, rows
        extra = bucket - real
        filler_ids = torch.full(
            (extra, input_ids.shape[1]), self.pad_id, dtype=input_ids.dtype, device=input_ids.device
        )
        filler_mask = torch.zeros_like(filler_ids)
        filler_mask[:, -1] = 1
        filler = DecodeRow(0.0, 1.0, 1.0, None, max_new_tokens=1)
        return (
            torch.cat([input_ids, filler_ids]),
            torch.cat([attention_mask, filler_mask]),
            rows + [filler] * extra,
        )

    def _compiled(self, batch: int, length: int, seconds: float) -> None:
        self.stats.compiled_buckets.append((batch, length))
        self.stats.compile_seconds += seconds
        log.info(
            "compiled the decoding step for %s rows × %s tokens in %.1f s (once per shape)",
            batch,
            length,
            seconds,
        )

    def _completion(self, tokens: list[int], row: DecodeRow) -> list[int]:
        """The row's tokens up to where it ended: its end token (dropped), or the padding written
        after its stop string or limit (a row with ``ignore_eos`` never samples an end token)."""
        for index, token in enumerate(tokens):
            if token in self.end_ids:
                return tokens[:index]
        return tokens
