"""The prefill/decode loop over a KV cache with per-sequence slots; yields typed events."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from camelid.engine.kv_cache import PADDING_POSITION
from camelid.engine.options import Options
from camelid.engine.sampling import SamplingParams, top_k_first
from camelid.engine.sequence import (
    Done,
    GenerationState,
    Piece,
    Stats,
    TokenizerLike,
    check_prompt,
    common_prefix,
)
from camelid.errors import BadRequest

__all__ = ["Done", "Engine", "GenerationState", "Piece", "Stats", "common_prefix", "paused_gc"]


class Engine:
    """Runs one loaded model. The KV cache is allocated once (lazily) with `n_slots` sequence slots; each slot
    remembers the tokens its cache holds so a new request that shares a prefix only prefills the rest."""

    def __init__(self, model: Any, tokenizer: TokenizerLike, n_ctx: int, n_slots: int = 1,
                 kv_dtype: torch.dtype = torch.float16) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.n_ctx, self.n_slots, self.kv_dtype = n_ctx, n_slots, kv_dtype
        self.cache: Any = None
        self.slot_tokens: list[list[int]] = [[] for _ in range(n_slots)]

    def _cache(self) -> Any:
        if self.cache is None:
            self.cache = self.model.new_cache(self.n_slots, self.n_ctx, self.kv_dtype)
        return self.cache

    def forget(self, slot: int) -> None:
        """Drop what a slot holds, so that the next prompt in it is computed whole (no prefix reuse). Results
        then depend on nothing but the prompt: llama.cpp's arithmetic, like camelid's, depends on how the tokens
        are grouped into batches, and prefix reuse regroups them."""
        self.slot_tokens[slot] = []

    def forward(self, slot: int, ids: Sequence[int], start: int, all_logits: bool) -> torch.Tensor:
        """Run `ids` at positions start.. in `slot`; logits [T, vocab] (or [1, vocab] for the last only)."""
        tokens = torch.tensor([list(ids)], dtype=torch.long)
        positions = torch.arange(start, start + len(ids), dtype=torch.long).unsqueeze(0)
        slots = torch.tensor([slot], dtype=torch.long)
        with torch.inference_mode(), paused_gc():
            logits = self.model(tokens, positions, self._cache(), slots, all_logits=all_logits)
        held = self.slot_tokens[slot]
        del held[start:]
        held.extend(ids)
        return logits[0]

    def prefill(self, slot: int, ids: Sequence[int], num_batch: int, reuse: bool = True,
                all_logits: bool = False) -> torch.Tensor:
        """Feed a prompt in chunks of `num_batch`, reusing the slot's cached prefix when allowed."""
        check_prompt(ids, self.n_ctx)
        start = common_prefix(self.slot_tokens[slot], ids) if reuse else 0
        start = min(start, len(ids) - 1)  # always run at least the last token to get its logits
        del self.slot_tokens[slot][start:]
        outputs = []
        for chunk_start in range(start, len(ids), num_batch):
            chunk = ids[chunk_start:chunk_start + num_batch]
            last_chunk = chunk_start + num_batch >= len(ids)
            if all_logits or last_chunk:
                outputs.append(self.forward(slot, chunk, chunk_start, all_logits))
            else:
                self.forward(slot, chunk, chunk_start, all_logits=False)
        return torch.cat(outputs, dim=0) if all_logits else outputs[-1][-1]

    def embed(self, ids: Sequence[int], slot: int) -> list[float]:
        """Mean-pooled, L2-normalized final hidden states of `ids` (computed in `slot`, which is then forgotten)."""
        if not ids:
            raise BadRequest("cannot embed an empty input")
        if len(ids) > self.n_ctx:
            raise BadRequest(f"the input is {len(ids)} tokens, longer than the context window ({self.n_ctx})")
        tokens = torch.tensor([list(ids)], dtype=torch.long)
        positions = torch.arange(len(ids), dtype=torch.long).unsqueeze(0)
        with torch.inference_mode(), paused_gc():
            hidden = self.model.hidden_states(tokens, positions, self._cache(), torch.tensor([slot]))  # [1, T, E]
        self.forget(slot)
        pooled = hidden[0].double().mean(dim=0)
        pooled = pooled / pooled.norm().clamp_min(1e-12)
        return [float(v) for v in pooled.float()]

    def start(self, state: GenerationState) -> list[Piece | Done]:
        """Prefill a sequence's prompt in its slot and sample its first token."""
        logits = self.prefill(state.slot, state.ids, state.options.num_batch)
        state.prefilled()
        return state.advance(logits.numpy())

    def start_many(self, states: list[GenerationState]) -> dict[int, list[Piece | Done]]:
        """Prefill several new sequences in ONE batched forward (each in its own slot, shorter prompts padded),
        then sample each one's first token. Prompts longer than a batch are prefilled one by one in chunks."""
        long = [i for i, s in enumerate(states) if len(s.ids) - self._reusable(s) > s.options.num_batch]
        events = {i: self.start(states[i]) for i in long}
        batch = [i for i in range(len(states)) if i not in events]
        if len(batch) == 1:
            events[batch[0]] = self.start(states[batch[0]])
        elif batch:
            for i, logits in zip(batch, self._prefill_together([states[i] for i in batch])):
                states[i].prefilled()
                events[i] = states[i].advance(logits.numpy())
        return events

    def _reusable(self, state: GenerationState) -> int:
        """Prompt tokens the slot's cache already holds (at least the last one is always run again)."""
        check_prompt(state.ids, self.n_ctx)
        return min(common_prefix(self.slot_tokens[state.slot], state.ids), len(state.ids) - 1)

    def _prefill_together(self, states: list[GenerationState]) -> list[torch.Tensor]:
        starts = [self._reusable(s) for s in states]
        width = max(len(s.ids) - start for s, start in zip(states, starts))
        tokens = torch.zeros(len(states), width, dtype=torch.long)
        positions = torch.full((len(states), width), PADDING_POSITION, dtype=torch.long)
        for row, (state, start) in enumerate(zip(states, starts)):
            rest = state.ids[start:]
            tokens[row, :len(rest)] = torch.tensor(rest)
            positions[row, :len(rest)] = torch.arange(start, len(state.ids))
        slots = torch.tensor([s.slot for s in states], dtype=torch.long)
        with torch.inference_mode(), paused_gc():
            logits = self.model(tokens, positions, self._cache(), slots, all_logits=False)  # [B, 1, vocab]
        for state, start in zip(states, starts):
            held = self.slot_tokens[state.slot]
            del held[start:]
            held.extend(state.ids[start:])
        return [logits[row, -1] for row in range(len(states))]

    def step(self, states: list[GenerationState]) -> dict[int, list[Piece | Done]]:
        """One decode step for every unfinished sequence, in ONE batched forward pass: each feeds its last token
        and samples the next. Returns the events of each sequence by its index in `states`."""
        active = [i for i, s in enumerate(states) if not s.finished]
        if not active:
            return {}
        tokens = torch.tensor([[states[i].last_token] for i in active], dtype=torch.long)
        positions = torch.tensor([[states[i].position] for i in active], dtype=torch.long)
        slots = torch.tensor([states[i].slot for i in active], dtype=torch.long)
        with torch.inference_mode(), paused_gc():
            logits = self.model(tokens, positions, self._cache(), slots, all_logits=False)  # [B, 1, vocab]
        rows = logits[:, -1]  # [B, vocab]
        tops = batched_top_k(rows, [states[i].params if states[i].constraint is None else
                                    dataclasses.replace(states[i].params, temperature=0.0) for i in active])
        events = {}
        for row, i in enumerate(active):
            state = states[i]
            held = self.slot_tokens[state.slot]
            del held[state.position:]
            held.append(state.last_token)
            events[i] = state.advance(rows[row].numpy(), tops[row])
        return events

    def generate(self, ids: Sequence[int], options: Options, slot: int = 0) -> Iterator[Piece | Done]:
        """Prefill `ids`, then sample until end of generation, a stop string, num_predict or a full context."""
        state = GenerationState(list(ids), options, self.tokenizer, self.n_ctx, slot)
        yield from self.start(state)
        while not state.finished:
            yield from self.step([state]).get(0, [])


def batched_top_k(rows: torch.Tensor, params: list[SamplingParams]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """top_k of several sequences' logits [B, vocab] where it is what `sample` would compute first (temperature
    > 0, no penalties): the (values, ids) each sequence's `sample` starts from, by one torch.topk per k (faster
    than one selection per row)."""
    found: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(params)
    by_k: dict[int, list[int]] = {}
    for i, p in enumerate(params):
        if top_k_first(p, rows.shape[-1]):
            by_k.setdefault(p.top_k, []).append(i)
    for k, members in by_k.items():
        chosen = rows if len(members) == rows.shape[0] else rows[members]  # no copy in the usual case
        values, ids = torch.topk(chosen, k)
        values, ids = values.numpy(), ids.numpy()
        for row, i in enumerate(members):
            found[i] = (values[row], ids[row])
    return found


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection during a forward pass: a pass allocates only short-lived, acyclic objects,
    and a collection in the middle of decoding costs more than the rest of the Python work (measured: 4 %)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
