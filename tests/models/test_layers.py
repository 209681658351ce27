"""RoPE pairing modes, YaRN limits, and the attention mask rule."""

from __future__ import annotations

import torch

from camelid.models.layers import RotaryEmbedding, attention_mask, grouped_attention


def test_norm_rope_on_permuted_heads_equals_neox() -> None:
    """llama.cpp's adjacent-pair RoPE on converter-permuted dims is HF's rotate-half RoPE."""
    head_dim, positions = 8, torch.arange(5)[None]
    x = torch.randn(1, 5, 2, head_dim)  # [B, T, H, D]
    permutation = torch.arange(head_dim).view(2, head_dim // 2).t().reshape(-1)  # [0, 4, 1, 5, ...]
    neox = RotaryEmbedding(head_dim, 10000.0, neox=True).tables(positions, 16).apply(x)
    norm = RotaryEmbedding(head_dim, 10000.0, neox=False).tables(positions, 16).apply(x[..., permutation])
    assert torch.allclose(norm, neox[..., permutation], atol=1e-6)


def test_partial_rotation_leaves_the_rest() -> None:
    x = torch.randn(1, 3, 1, 8)
    out = RotaryEmbedding(4, 10000.0, neox=True).tables(torch.arange(3)[None], 8).apply(x)
    assert torch.equal(out[..., 4:], x[..., 4:]) and torch.equal(out[0, 0], x[0, 0])


def test_yarn_keeps_fast_dims_and_interpolates_slow_ones() -> None:
    positions = torch.tensor([[100]])
    plain = RotaryEmbedding(64, 10000.0, neox=True).tables(positions, 4096)
    linear = RotaryEmbedding(64, 10000.0, neox=True, freq_scale=0.25).tables(positions, 4096)
    yarn = RotaryEmbedding(64, 10000.0, neox=True, freq_scale=0.25, yarn=True,
                           original_context=4096).tables(positions, 4096)
    magnitude = 1 + 0.1 * torch.log(torch.tensor(4.0))
    assert torch.allclose(yarn.cos[..., :10], plain.cos[..., :10] * magnitude, atol=1e-6)
    assert torch.allclose(yarn.cos[..., 24:], linear.cos[..., 24:] * magnitude, atol=1e-6)


def test_attention_mask_rule() -> None:
    positions = torch.tensor([[3, 4, -1]])
    mask = attention_mask(positions, 5, window=None)[0, 0]
    assert mask.tolist()[:2] == [[True] * 4 + [False], [True] * 5] and mask[2].all()
    windowed = attention_mask(positions, 5, window=2)[0, 0]
    assert windowed.tolist()[:2] == [[False, False, True, True, False], [False, False, False, True, True]]


def test_grouped_attention_equals_repeated_heads() -> None:
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 6)
    mask = attention_mask(torch.tensor([[2, 3, 4], [0, 1, 2]]), 5, None)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=mask, scale=0.3)
    assert torch.allclose(grouped_attention(q, k, v, mask, 0.3), expected, atol=1e-6)
