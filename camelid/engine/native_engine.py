"""The generation loop over a `NativeModel` (camelid.models.native_model): the same prompt chunks, sampler,
stop strings and events as `Engine.generate`, without torch — what a cold one-shot `camelid run` uses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from camelid.engine.options import Options
from camelid.engine.sequence import Done, GenerationState, Piece, check_prompt, common_prefix


class NativeEngine:
    """One sequence at a time in the model's single cache slot, which remembers the tokens it holds: a prompt
    that extends the previous conversation (a chat's next turn) only prefills what is new, as Engine does."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer, self.n_ctx = model, tokenizer, model.n_ctx
        self.held: list[int] = []

    def forward(self, ids: Sequence[int], start: int) -> Any:
        """Run `ids` at positions start.. and record them as what the cache holds; the last logits."""
        logits = self.model.forward(list(ids), start)
        del self.held[start:]
        self.held.extend(ids)
        return logits

    def prefill(self, ids: Sequence[int], num_batch: int) -> Any:
        """Feed a prompt in chunks of `num_batch` (as Engine.prefill does) from the end of the cached prefix it
        shares (at least its last token runs again); the last position's logits."""
        check_prompt(ids, self.n_ctx)
        first = min(common_prefix(self.held, ids), len(ids) - 1)
        logits = None
        for start in range(first, len(ids), max(1, num_batch)):
            logits = self.forward(ids[start:start + num_batch], start)
        return logits

    def generate(self, ids: Sequence[int], options: Options) -> Iterator[Piece | Done]:
        """Prefill `ids`, then sample until end of generation, a stop string, num_predict or a full context."""
        state = GenerationState(list(ids), options, self.tokenizer, self.n_ctx)
        logits = self.prefill(state.ids, options.num_batch)
        state.prefilled()
        yield from state.advance(logits)
        while not state.finished:
            yield from state.advance(self.forward([state.last_token], state.position))
