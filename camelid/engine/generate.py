"""The prefill/decode loop over a KV cache with per-sequence slots; yields typed events."""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from camelid.engine.options import Options
from camelid.engine.sampling import sample
from camelid.engine.stops import StopMatcher
from camelid.errors import BadRequest


class TokenizerLike(Protocol):
    eog_ids: set[int]

    def decode(self, ids: list[int], skip_special: bool = True) -> str: ...


@dataclass
class Stats:
    """Timings of one request, named and measured (nanoseconds) as Ollama reports them."""

    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    load_duration: int = 0
    total_duration: int = 0
    done_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_eval_count / (self.prompt_eval_duration / 1e9) if self.prompt_eval_duration else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.eval_count / (self.eval_duration / 1e9) if self.eval_duration else 0.0


@dataclass
class Piece:
    """Text released to the caller; `token` is the sampled id (None for text flushed at the end)."""

    text: str
    token: int | None = None


@dataclass
class Done:
    stats: Stats
    tokens: list[int] = field(default_factory=list)  # the generated ids


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
        if len(ids) > self.n_ctx:
            raise BadRequest(f"the prompt is {len(ids)} tokens, longer than the context window "
                             f"(num_ctx={self.n_ctx}); shorten it or raise num_ctx")
        if not ids:
            raise BadRequest("the prompt is empty")
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

    def generate(self, ids: Sequence[int], options: Options, slot: int = 0) -> Iterator[Piece | Done]:
        """Prefill `ids`, then sample until end of generation, a stop string, num_predict or a full context."""
        from camelid.tokenizer import IncrementalDecoder

        t_start = time.perf_counter_ns()
        stats = Stats(prompt_eval_count=len(ids))
        logits = self.prefill(slot, ids, options.num_batch)
        stats.prompt_eval_duration = time.perf_counter_ns() - t_start
        seed = options.seed if options.seed >= 0 else random.randrange(1 << 62)
        generator = torch.Generator().manual_seed(seed)
        params = options.sampling
        history, generated = list(ids), []
        decoder = IncrementalDecoder(self.tokenizer)
        stops = StopMatcher(options.stop)
        limit = options.num_predict if options.num_predict >= 0 else None
        t_eval = time.perf_counter_ns()
        reason, hit = "length", False
        while limit is None or len(generated) < limit:
            token = sample(logits, params, history, generator)
            if token in self.tokenizer.eog_ids:
                reason = "stop"
                break
            history.append(token)
            generated.append(token)
            text, hit = stops.feed(decoder.add(token))
            yield Piece(text, token)
            if hit:
                reason = "stop"
                break
            if len(history) >= self.n_ctx or len(generated) == limit:
                break
            logits = self.forward(slot, [token], len(history) - 1, all_logits=False)[-1]
        stats.eval_count = len(generated)
        stats.eval_duration = time.perf_counter_ns() - t_eval
        if not hit:  # release held text unless a stop string ended the answer
            tail, _ = stops.feed(decoder.flush())
            tail += stops.flush()
            if tail:
                yield Piece(tail, None)
        stats.done_reason = reason
        stats.total_duration = time.perf_counter_ns() - t_start
        yield Done(stats, generated)


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


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
