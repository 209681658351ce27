"""Acceptance check D: camelid's logits equal HF transformers' within 1e-4 for the same tiny random models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from camelid.loader import load_gguf
from camelid.models.base import DecoderModel

TOLERANCE = 1e-4
ARCHS = ["llama", "llama3_rope", "gemma3", "qwen2", "qwen3", "phi3", "phi3_longrope"]
N_CTX = 64  # per-slot cache length used by every test


def load(ref: Any) -> DecoderModel:
    model, config, _ = load_gguf(ref.gguf_path)
    assert config.architecture == ref.spec.gguf_arch
    return model


def max_diff(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape and ours.dtype == torch.float32
    return (ours - theirs).abs().max().item()


@pytest.mark.parametrize("name", ARCHS)
def test_prefill_matches_hf(name: str, reference: Callable) -> None:
    ref = reference(name)
    model = load(ref)
    cache = model.new_cache(1, N_CTX, torch.float32)
    positions = torch.arange(len(ref.tokens))[None]  # [1, 32]
    with torch.no_grad():
        logits = model(ref.tokens[None], positions, cache, torch.tensor([0]))  # [1, 32, vocab]
    diff = max_diff(logits[0], ref.logits)
    print(f"\n{name}: prefill max |Δlogit| {diff:.2e} (logit scale {ref.logits.abs().max():.1f})")
    assert diff < TOLERANCE


@pytest.mark.parametrize("name", ARCHS)
def test_decode_with_kv_cache_matches_hf(name: str, reference: Callable) -> None:
    ref = reference(name)
    model = load(ref)
    cache = model.new_cache(2, N_CTX, torch.float32)
    slot = torch.tensor([1])
    n_prompt = 5
    with torch.no_grad():
        prompt, prompt_positions = ref.tokens[None, :n_prompt], torch.arange(n_prompt)[None]
        logits = model(prompt, prompt_positions, cache, slot, all_logits=False)
        steps = [logits[0, 0]]
        for position in range(n_prompt, len(ref.tokens)):
            logits = model(ref.tokens[None, position:position + 1], torch.tensor([[position]]), cache, slot,
                           all_logits=False)  # [1, 1, vocab]
            steps.append(logits[0, 0])
    diff = max_diff(torch.stack(steps), ref.logits[n_prompt - 1:])
    print(f"\n{name}: decode max |Δlogit| {diff:.2e}")
    assert diff < TOLERANCE


@pytest.mark.parametrize("name", ["llama", "gemma3", "phi3"])
def test_batch_of_two_sequences_equals_each_alone(name: str, reference: Callable) -> None:
    """Two sequences of different lengths prefilled together (right padding) in slots 2 and 0, then decoded
    together one token per step at different positions, give the logits each gives alone."""
    ref = reference(name)
    model = load(ref)
    short = ref.tokens[:12].flip(0)  # a different sequence
    short_logits = ref.hf_logits(short)
    cache = model.new_cache(3, N_CTX, torch.float32)
    slots = torch.tensor([2, 0])
    long_prompt, short_prompt = 20, 7
    tokens = torch.zeros(2, long_prompt, dtype=torch.long)
    positions = torch.full((2, long_prompt), -1)
    tokens[0], positions[0] = ref.tokens[:long_prompt], torch.arange(long_prompt)
    tokens[1, :short_prompt], positions[1, :short_prompt] = short[:short_prompt], torch.arange(short_prompt)
    with torch.no_grad():
        logits = model(tokens, positions, cache, slots)  # [2, 20, vocab]
        assert max_diff(logits[0], ref.logits[:long_prompt]) < TOLERANCE
        assert max_diff(logits[1, :short_prompt], short_logits[:short_prompt]) < TOLERANCE
        last = model(tokens, positions, cache, slots, all_logits=False)  # [2, 1, vocab]
        assert last.shape == (2, 1, logits.shape[-1])
        assert max_diff(last[1, 0], short_logits[short_prompt - 1]) < TOLERANCE
        for step in range(len(short) - short_prompt):
            step_positions = torch.tensor([[long_prompt + step], [short_prompt + step]])
            step_tokens = torch.stack([ref.tokens[long_prompt + step], short[short_prompt + step]])[:, None]
            logits = model(step_tokens, step_positions, cache, slots, all_logits=False)
            assert max_diff(logits[0, 0], ref.logits[long_prompt + step]) < TOLERANCE
            assert max_diff(logits[1, 0], short_logits[short_prompt + step]) < TOLERANCE


def test_hidden_states_match_hf_final_norm(reference: Callable) -> None:
    ref = reference("qwen3")
    model = load(ref)
    cache = model.new_cache(1, N_CTX, torch.float32)
    with torch.no_grad():
        positions = torch.arange(len(ref.tokens))[None]
        ours = model.hidden_states(ref.tokens[None], positions, cache, torch.tensor([0]))
        theirs = ref.hf_model.model(input_ids=ref.tokens[None], use_cache=False).last_hidden_state
    assert ours.shape == (1, len(ref.tokens), model.config.n_embd)
    assert max_diff(ours, theirs) < TOLERANCE


def test_sliding_window_matters_for_gemma3(reference: Callable) -> None:
    """Guard against a vacuous gemma3 check: without the window the logits past it must differ."""
    ref = reference("gemma3")
    model = load(ref)
    for block in model.blk:
        block.window = None
    cache = model.new_cache(1, N_CTX, torch.float32)
    with torch.no_grad():
        logits = model(ref.tokens[None], torch.arange(len(ref.tokens))[None], cache, torch.tensor([0]))
    assert (logits[0, :8] - ref.logits[:8]).abs().max() < TOLERANCE  # inside the window: identical
    assert (logits[0, 8:] - ref.logits[8:]).abs().max() > 1e-2


def test_float16_cache_stays_close(reference: Callable) -> None:
    ref = reference("llama")
    model = load(ref)
    cache = model.new_cache(1, N_CTX)  # llama.cpp's default f16 storage
    assert cache.keys[0].dtype == torch.float16
    with torch.no_grad():
        logits = model(ref.tokens[None], torch.arange(len(ref.tokens))[None], cache, torch.tensor([0]))
    assert max_diff(logits[0], ref.logits) < 1e-2
