"""Sampling filters, penalties, seeded draws and the top-k selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from camelid.engine import sampling as s
from camelid.kernels import library


def f32(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_top_k_keeps_k_largest() -> None:
    logits = f32([1.0, 5.0, 3.0, 4.0, 2.0])
    out = s.top_k(logits, 2)
    assert np.flatnonzero(np.isfinite(out)).tolist() == [1, 3]
    assert np.array_equal(s.top_k(logits, 0), logits)


def test_top_p_smallest_set_reaching_p() -> None:
    probs = f32([0.5, 0.3, 0.15, 0.05])
    out = s.top_p(np.log(probs), 0.75)
    assert np.isfinite(out).tolist() == [True, True, False, False]
    out = s.top_p(np.log(probs), 0.1)
    assert np.isfinite(out).tolist() == [True, False, False, False]


def test_min_p_relative_to_top() -> None:
    probs = f32([0.6, 0.3, 0.08, 0.02])
    out = s.min_p(np.log(probs), 0.1)
    assert np.isfinite(out).tolist() == [True, True, True, False]


def test_typical_p_keeps_typical_tokens() -> None:
    probs = f32([0.4, 0.3, 0.2, 0.1])
    out = s.typical_p(np.log(probs), 0.5)
    kept = np.isfinite(out)
    assert 1 <= int(kept.sum()) < 4
    assert np.array_equal(s.typical_p(np.log(probs), 1.0), np.log(probs))


def test_penalties_follow_llama_cpp() -> None:
    logits = f32([2.0, -2.0, 1.0, 0.5])
    out = s.apply_penalties(logits, [0, 1, 1], repeat_penalty=2.0, presence_penalty=0.0, frequency_penalty=0.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.5]
    out = s.apply_penalties(logits, [0, 1, 1], repeat_penalty=1.0, presence_penalty=0.5, frequency_penalty=0.25)
    assert out.tolist() == pytest.approx([2.0 - 0.25 - 0.5, -2.0 - 0.5 - 0.5, 1.0, 0.5])
    assert logits.tolist() == [2.0, -2.0, 1.0, 0.5]  # the caller's logits are left alone
    assert s.recent_window([1, 2, 3, 4], 2) == [3, 4]
    assert s.recent_window([1, 2, 3], 0) == ()


def test_greedy_and_seeded_draw_reproducible() -> None:
    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    params = s.SamplingParams(temperature=0.0)
    assert s.sample(logits, params, [], s.new_rng(0)) == int(logits.argmax())
    for hot in (s.SamplingParams(temperature=1.5, top_k=0, top_p=1.0), s.SamplingParams(temperature=1.0)):
        a = [s.sample(logits, hot, [], s.new_rng(7)) for _ in range(3)]
        b = [s.sample(logits, hot, [], s.new_rng(7)) for _ in range(3)]
        assert a == b
        draws = {s.sample(logits, hot, [], s.new_rng(i)) for i in range(20)}
        assert len(draws) > 1


def test_draw_matches_distribution() -> None:
    logits = f32([math.log(0.7), math.log(0.3)])
    rng = s.new_rng(1)
    picks = [s.draw(logits, 1.0, rng) for _ in range(4000)]
    assert 0.67 < picks.count(0) / len(picks) < 0.73


def test_draw_never_picks_a_masked_token() -> None:
    logits = np.full(50, -np.inf, dtype=np.float32)
    logits[[3, 40]] = [0.0, 1.0]
    rng = s.new_rng(3)
    assert {s.draw(logits, 0.7, rng) for _ in range(500)} == {3, 40}


@pytest.mark.parametrize("native", [True, False])
def test_top_k_select_matches_a_full_sort(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if native and library.library() is None:
        pytest.skip("no native kernels on this machine")
    if not native:
        monkeypatch.setattr(library, "library", lambda: None)
    rng = np.random.default_rng(5)
    for n, k in ((49152, 40), (1000, 1), (300, 300), (64, 7)):
        x = rng.standard_normal(n).astype(np.float32)
        x[rng.integers(0, n, n // 4)] = 0.5  # ties: the lower id comes first
        values, ids = s.top_k_select(x, k)
        order = np.lexsort((np.arange(n), -x))[:k]
        assert ids.tolist() == order.tolist()
        assert np.array_equal(values, x[order])
