"""Attention over the KV cache: llama.cpp's arithmetic in the native kernel, a float64 torch path otherwise.

The torch path computes in float64 and rounds once, so a query's result does not depend on how many tokens share
the pass (see camelid/kernels/reference.py for why that matters); the native path follows ggml bit for bit
(camelid/kernels/csrc/ggml_attention.c), which is what matching llama.cpp's greedy output needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from camelid.kernels import native

if TYPE_CHECKING:
    from camelid.engine.kv_cache import KVCache


def attention_mask(positions: torch.Tensor, n_keys: int, window: int | None) -> torch.Tensor:
    """bool [B, 1, T, n_keys]: key position j is visible to a query at position p iff j <= p and, with a
    sliding window, p - j < window. Padding queries (p < 0) see every key, only to keep softmax finite."""
    keys = torch.arange(n_keys, device=positions.device)  # [L]
    query = positions[:, None, :, None]  # [B, 1, T, 1]
    visible = keys <= query
    if window is not None:
        visible &= query - keys < window
    return visible | (query < 0)


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                      scale: float) -> torch.Tensor:
    """Scaled dot-product attention where each K/V head serves n_head / n_kv_heads query heads.

    q [B, H, T, Dk], k [B, Hkv, L, Dk], v [B, Hkv, L, Dv], mask bool [B, 1, T, L] -> [B, H, T, Dv].
    Query head h uses K/V head h // (H / Hkv), as in llama.cpp and HF; K/V are never repeated in memory.
    Computed in float64 and rounded once.
    """
    out_dtype = q.dtype
    q, k, v = q.double(), k.double(), v.double()
    batch, n_head, n_tokens, head_dim = q.shape
    n_kv_heads = k.shape[1]
    group = n_head // n_kv_heads
    q = q.reshape(batch, n_kv_heads, group * n_tokens, head_dim)  # rows ordered (group member, token)
    if group > 1:
        mask = mask.repeat(1, 1, group, 1)  # [B, 1, group * T, L]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)  # [B, Hkv, group * T, Dv]
    return out.reshape(batch, n_head, n_tokens, v.shape[-1]).to(out_dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache, layer: int, slots: torch.Tensor,
           positions: torch.Tensor, window: int | None, scale: float,
           mask: Callable[[int | None], torch.Tensor] | None = None) -> torch.Tensor:
    """Store the new keys/values k, v [B, T, Hkv, D] of tokens at positions [B, T] in cache slots [B] for
    `layer`, then the attention of roped queries q [B, T, H, Dk] over everything the slots hold. `mask(window)`
    may supply the torch path's mask. -> [B, T, H, Dv]."""
    n_keys = int(positions.max()) + 1
    if n_keys > cache.n_ctx:
        raise ValueError(f"position {n_keys - 1} is past the cache context of {cache.n_ctx} tokens")
    out = native.attention(q, cache.keys[layer], cache.values[layer], slots, positions, n_keys, window, scale,
                           k_new=k, v_new=v)
    if out is not None:
        return out
    cache.write(layer, slots, positions, k.transpose(1, 2), v.transpose(1, 2))
    keys, values = cache.read(layer, slots, n_keys)  # [B, Hkv, L, D]
    visible = mask(window) if mask is not None else attention_mask(positions, n_keys, window)
    return grouped_attention(q.transpose(1, 2), keys, values, visible, scale).transpose(1, 2)
