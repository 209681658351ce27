"""One sequence being generated: its sampler, stop strings, incremental text and timings. The engine advances
many of these together (one batched forward per step); each turns its logits into a token and events."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from camelid.engine.options import Options
from camelid.engine.sampling import log_softmax, new_rng, sample, top_k_select
from camelid.engine.stats import Stats
from camelid.engine.stops import StopMatcher
from camelid.errors import BadModelFile, BadRequest


class TokenizerLike(Protocol):
    eog_ids: set[int]

    def decode(self, ids: list[int], skip_special: bool = True) -> str: ...


class Constraint(Protocol):
    """A grammar that restricts the next token (camelid.engine.grammar)."""

    def mask(self, logits: np.ndarray) -> np.ndarray: ...

    def accept(self, token: int) -> None: ...

    def is_done(self) -> bool: ...


@dataclass
class Piece:
    """Text released to the caller; `token` is the sampled id (None for text flushed at the end)."""

    text: str
    token: int | None = None
    logprob: float | None = None  # log-probability of the token under the model (logprobs requests)
    top: list[tuple[int, float]] | None = None  # the most likely tokens and their log-probabilities


@dataclass
class Done:
    stats: Stats
    tokens: list[int] = field(default_factory=list)  # the generated ids


class GenerationState:
    """A request's generation state. `advance(logits)` samples the next token and returns the events it causes;
    `finished` tells whether it needs another forward pass (of `last_token` at `position`)."""

    def __init__(self, ids: list[int], options: Options, tokenizer: Any, n_ctx: int, slot: int = 0,
                 constraint: Constraint | None = None, top_logprobs: int | None = None) -> None:
        from camelid.tokenizer import IncrementalDecoder

        self.ids, self.options, self.tokenizer, self.n_ctx, self.slot = list(ids), options, tokenizer, n_ctx, slot
        self.constraint, self.top_logprobs = constraint, top_logprobs
        seed = options.seed if options.seed >= 0 else random.randrange(1 << 62)
        self.rng = new_rng(seed)
        self.params = options.sampling
        self.history, self.generated = list(ids), []
        self.decoder = IncrementalDecoder(tokenizer)
        self.stops = StopMatcher(options.stop)
        self.limit = options.num_predict if options.num_predict >= 0 else None
        self.stats = Stats(prompt_eval_count=len(ids))
        self.t_start = time.perf_counter_ns()
        self.t_eval = 0
        self.finished, self.cancelled, self.hit = False, False, False
        self.reason = "length"

    @property
    def last_token(self) -> int:
        return self.history[-1]

    @property
    def position(self) -> int:
        """Where `last_token` sits in the cache."""
        return len(self.history) - 1

    def prefilled(self) -> None:
        """Mark the end of the prompt's evaluation (the first logits are at hand)."""
        self.stats.prompt_eval_duration = time.perf_counter_ns() - self.t_start
        self.t_eval = time.perf_counter_ns()

    def advance(self, logits: np.ndarray, top: tuple[np.ndarray, np.ndarray] | None = None) -> list[Piece | Done]:
        """Sample from this sequence's next-token logits [vocab] float32 (`top`: its top_k, computed with a
        batch's); return the events (a Piece, then Done when it ends)."""
        peak = float(logits.max())  # NaN if any is NaN
        if math.isnan(peak) or peak == math.inf:
            raise BadModelFile("the model computed NaN or infinite logits: its weights are probably damaged "
                               "(pull or create the model again)")
        if self.constraint is not None:
            logits, top = self.constraint.mask(logits), None
        token = sample(logits, self.params, self.history, self.rng, top)
        events: list[Piece | Done] = []
        if token in self.tokenizer.eog_ids:
            self.reason = "stop"
            return self._finish(events)
        if self.constraint is not None:
            self.constraint.accept(token)
        self.history.append(token)
        self.generated.append(token)
        text, self.hit = self.stops.feed(self.decoder.add(token))
        piece = Piece(text, token)
        if self.top_logprobs is not None:
            log_probs = log_softmax(logits)
            piece.logprob = float(log_probs[token])
            if self.top_logprobs > 0:
                values, ids = top_k_select(log_probs, min(self.top_logprobs, log_probs.size))
                piece.top = [(int(i), float(v)) for i, v in zip(ids, values)]
        events.append(piece)
        if self.hit or (self.constraint is not None and self.constraint.is_done()):
            self.reason = "stop"
            return self._finish(events)
        if len(self.history) >= self.n_ctx or len(self.generated) == self.limit:
            return self._finish(events)
        return events

    def cancel(self) -> list[Piece | Done]:
        """End now (a client went away, or the server stops)."""
        self.cancelled = True
        self.reason = "cancel"
        return self._finish([])

    def _finish(self, events: list[Piece | Done]) -> list[Piece | Done]:
        self.finished = True
        now = time.perf_counter_ns()
        self.stats.eval_count = len(self.generated)
        self.stats.eval_duration = now - (self.t_eval or now)
        if not self.hit:  # release held text unless a stop string ended the answer
            tail, _ = self.stops.feed(self.decoder.flush())
            tail += self.stops.flush()
            if tail:
                events.append(Piece(tail, None))
        self.stats.done_reason = self.reason
        self.stats.total_duration = now - self.t_start
        events.append(Done(self.stats, self.generated))
        return events


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def check_prompt(ids: Sequence[int], n_ctx: int) -> None:
    """A prompt an engine can run: not empty, and within the context window (BadRequest otherwise)."""
    if len(ids) > n_ctx:
        raise BadRequest(f"the prompt is {len(ids)} tokens, longer than the context window "
                         f"(num_ctx={n_ctx}); shorten it or raise num_ctx")
    if not ids:
        raise BadRequest("the prompt is empty")
