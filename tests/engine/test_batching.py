"""Batched decoding: a sequence's tokens do not depend on which other sequences share its prefill or its decode
steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import camelid
from camelid.engine.sequence import GenerationState
from camelid.errors import BadModelFile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llm():
    return camelid.load("smollm2:135m", n_slots=4, num_ctx=256)


def state(llm, prompt: str, slot: int, n: int = 20) -> GenerationState:
    ids = llm.chat_ids([{"role": "user", "content": prompt}])
    return GenerationState(ids, llm.options.merged({"num_predict": n, "temperature": 0}), llm.tokenizer, llm.n_ctx,
                           slot=slot)


def decode(llm, states: list[GenerationState], together: bool) -> None:
    engine = llm.engine
    for s in states:
        engine.forget(s.slot)
    if together:
        engine.start_many(states)
    else:
        for s in states:
            engine.start(s)
    while not all(s.finished for s in states):
        if together:
            engine.step(states)
        else:
            for s in states:
                engine.step([s])


def test_decode_logits_do_not_depend_on_the_batch(llm) -> None:
    engine = llm.engine
    states = [state(llm, p, i) for i, p in enumerate(("Name a colour.", "Count to three.", "Say hi."))]
    for s in states:
        engine.forget(s.slot)
        engine.start(s)
    tokens = torch.tensor([[s.last_token] for s in states])
    positions = torch.tensor([[s.position] for s in states])
    with torch.inference_mode():
        together = engine.model(tokens, positions, engine._cache(), torch.tensor([0, 1, 2]), all_logits=False)
        alone = engine.model(tokens[:1], positions[:1], engine._cache(), torch.tensor([0]), all_logits=False)
    assert torch.equal(together[0], alone[0])  # bit for bit


def test_greedy_text_alone_and_batched(llm) -> None:
    prompts = ("Name three fruits.", "What is two plus two?", "Describe the sea.")
    alone = [state(llm, p, i) for i, p in enumerate(prompts)]
    decode(llm, alone, together=False)
    batched = [state(llm, p, i) for i, p in enumerate(prompts)]
    decode(llm, batched, together=True)
    for a, b in zip(alone, batched):
        assert len(a.generated) >= 3
        assert a.generated == b.generated  # every kernel computes each (row, token) the same way in any batch


def test_non_finite_logits_fail_with_one_clear_error(llm):
    """Damaged weights compute NaN (or infinite) logits: the sequence fails with a BadModelFile naming the cause,
    instead of sampling garbage; masked (-inf) logits are ordinary."""
    vocab = len(llm.tokenizer.vocab.texts)
    for bad in (np.nan, np.inf):
        logits = np.zeros(vocab, np.float32)
        logits[7] = bad
        with pytest.raises(BadModelFile, match="NaN or infinite logits"):
            state(llm, "hi", 0).advance(logits)
    logits = np.full(vocab, -np.inf, np.float32)
    logits[42] = 1.0
    events = state(llm, "hi", 0).advance(logits)
    assert events and events[0].token == 42
