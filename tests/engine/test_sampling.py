"""Sampling filters, penalties and seeded draws."""

from __future__ import annotations

import math

import pytest
import torch

from camelid.engine import sampling as s


def test_top_k_keeps_k_largest() -> None:
    logits = torch.tensor([1.0, 5.0, 3.0, 4.0, 2.0])
    out = s.top_k(logits, 2)
    assert torch.isfinite(out).nonzero().flatten().tolist() == [1, 3]
    assert torch.equal(s.top_k(logits, 0), logits)


def test_top_p_smallest_set_reaching_p() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    out = s.top_p(probs.log(), 0.75)
    assert torch.isfinite(out).tolist() == [True, True, False, False]
    out = s.top_p(probs.log(), 0.1)
    assert torch.isfinite(out).tolist() == [True, False, False, False]


def test_min_p_relative_to_top() -> None:
    probs = torch.tensor([0.6, 0.3, 0.08, 0.02])
    out = s.min_p(probs.log(), 0.1)
    assert torch.isfinite(out).tolist() == [True, True, True, False]


def test_typical_p_keeps_typical_tokens() -> None:
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1])
    out = s.typical_p(probs.log(), 0.5)
    kept = torch.isfinite(out)
    assert 1 <= int(kept.sum()) < 4
    assert torch.equal(s.typical_p(probs.log(), 1.0), probs.log())


def test_penalties_follow_llama_cpp() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 0.5])
    out = s.apply_penalties(logits, [0, 1, 1], repeat_penalty=2.0, presence_penalty=0.0, frequency_penalty=0.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]
    out = s.apply_penalties(logits, [0, 1, 1], repeat_penalty=1.0, presence_penalty=0.5, frequency_penalty=0.25)
    assert out.tolist() == pytest.approx([2.0 - 0.25 - 0.5, -2.0 - 0.5 - 0.5, 1.0, 0.5])
    assert s.recent_window([1, 2, 3, 4], 2) == [3, 4]
    assert s.recent_window([1, 2, 3], 0) == ()


def test_greedy_and_seeded_draw_reproducible() -> None:
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    params = s.SamplingParams(temperature=0.0)
    assert s.sample(logits, params, [], torch.Generator()) == int(logits.argmax())
    hot = s.SamplingParams(temperature=1.5, top_k=0, top_p=1.0)
    a = [s.sample(logits, hot, [], torch.Generator().manual_seed(7)) for _ in range(3)]
    b = [s.sample(logits, hot, [], torch.Generator().manual_seed(7)) for _ in range(3)]
    assert a == b
    draws = {s.sample(logits, hot, [], torch.Generator().manual_seed(i)) for i in range(20)}
    assert len(draws) > 1


def test_draw_matches_distribution() -> None:
    logits = torch.tensor([math.log(0.7), math.log(0.3)])
    gen = torch.Generator().manual_seed(1)
    picks = [s.draw(logits, 1.0, gen) for _ in range(2000)]
    assert 0.65 < picks.count(0) / len(picks) < 0.75
