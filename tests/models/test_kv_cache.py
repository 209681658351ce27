"""KVCache: preallocated slots, writes at positions, float32 reads, padding, clear."""

from __future__ import annotations

import pytest
import torch

from camelid.engine.kv_cache import KVCache


def make_cache(dtype: torch.dtype = torch.float32) -> KVCache:
    return KVCache(n_layers=2, n_slots=3, n_ctx=8, n_kv_heads=2, head_dim_k=4, head_dim_v=5, dtype=dtype)


def test_storage_is_preallocated_per_layer() -> None:
    cache = make_cache(torch.float16)
    assert cache.n_slots == 3 and cache.n_ctx == 8
    assert cache.keys[1].shape == (3, 2, 8, 4) and cache.values[1].shape == (3, 2, 8, 5)
    assert cache.keys[0].dtype == torch.float16
    assert cache.n_bytes == 2 * 3 * 2 * 8 * (4 + 5) * 2


def test_update_writes_positions_of_each_slot_and_reads_prefix() -> None:
    cache = make_cache()
    k, v = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 3, 5)  # [B, Hkv, T, D]
    slots, positions = torch.tensor([2, 0]), torch.tensor([[0, 1, 2], [3, 4, 5]])
    keys, values = cache.update(1, slots, positions, k, v)
    assert keys.shape == (2, 2, 6, 4) and values.shape == (2, 2, 6, 5) and keys.dtype == torch.float32
    assert torch.equal(keys[0, :, :3], k[0]) and torch.equal(values[1, :, 3:6], v[1])
    assert torch.equal(cache.keys[1][2, :, :3], k[0]) and torch.equal(cache.keys[1][0, :, 3:6], k[1])
    assert not cache.keys[1][1].any() and not cache.keys[0].any()  # other slot, other layer untouched


def test_padding_positions_are_not_written() -> None:
    cache = make_cache()
    k, v = torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 5)
    keys, _ = cache.update(0, torch.tensor([1]), torch.tensor([[0, 1, -1]]), k, v)
    assert keys.shape[2] == 2 and cache.keys[0][1, :, :2].all() and not cache.keys[0][1, :, 2:].any()


def test_float16_storage_returns_float32() -> None:
    cache = make_cache(torch.float16)
    k = torch.full((1, 2, 1, 4), 1 / 3)
    keys, _ = cache.update(0, torch.tensor([0]), torch.tensor([[0]]), k, torch.zeros(1, 2, 1, 5))
    assert keys.dtype == torch.float32 and keys[0, 0, 0, 0].item() == torch.tensor(1 / 3).half().item()


def test_position_past_context_is_refused() -> None:
    cache = make_cache()
    with pytest.raises(ValueError, match="past the cache context of 8"):
        cache.update(0, torch.tensor([0]), torch.tensor([[8]]), torch.zeros(1, 2, 1, 4),
                     torch.zeros(1, 2, 1, 5))


def test_clear_zeroes_one_slot() -> None:
    cache = make_cache()
    for slot in range(3):
        k, v = torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 5)
        cache.update(0, torch.tensor([slot]), torch.tensor([[0]]), k, v)
    cache.clear(1)
    assert not cache.keys[0][1].any() and not cache.values[0][1].any() and cache.keys[0][0].any()
