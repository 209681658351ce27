"""ggml's arithmetic as camelid reproduces it: 8-bit activation blocks, the Q8_1 sum term, the GELU table, RMSNorm."""

from __future__ import annotations

import numpy as np
import torch
from gguf.constants import GGMLQuantizationType as T

from camelid.kernels import QuantLinear, numerics
from camelid.models.layers import RMSNorm
from camelid.quant import quantize_reference


def ggml_q4_1_dot(x: torch.Tensor, raw: np.ndarray, n_out: int) -> torch.Tensor:
    """llama.cpp's Q4_1 × Q8_1 formula, block by block in float64: Σ d_w·d_a·Σ(q_w·q_a) + m_w·s_a with
    s_a = fp16(d·Σq_a)."""
    blocks = torch.from_numpy(raw).reshape(n_out, -1, 20)
    d_w = blocks[..., 0:2].contiguous().view(torch.float16).double()[..., 0]
    m_w = blocks[..., 2:4].contiguous().view(torch.float16).double()[..., 0]
    q_w = torch.cat([blocks[..., 4:] & 0x0F, blocks[..., 4:] >> 4], dim=-1).double()  # [out, nb, 32]
    q_a, d_a = numerics.q8_blocks(x)  # [T*nb, 32], [T*nb, 1]
    s_a = (d_a * q_a.sum(1, keepdim=True)).half().double().reshape(x.shape[0], -1)
    q_a = q_a.double().reshape(x.shape[0], -1, 32)
    d_a = d_a.half().double().reshape(x.shape[0], -1)
    isum = torch.einsum("onk,tnk->ton", q_w, q_a)
    return (d_w[None] * d_a[:, None] * isum + m_w[None] * s_a[:, None]).sum(-1)


def test_q4_1_matmul_is_llama_cpp_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    n_out, n_in = 48, 256
    weights = torch.randn(n_out, n_in, generator=gen).numpy()
    raw = quantize_reference(weights, T.Q4_1).reshape(n_out, -1)
    x = torch.randn(3, n_in, generator=gen)
    layer = QuantLinear(torch.from_numpy(raw), T.Q4_1, n_in, n_out)
    expected = ggml_q4_1_dot(x, raw, n_out)
    assert (layer(x).double() - expected).abs().max() < 1e-5
    with numerics.float32_numerics():  # without the Q8_1 emulation the result is measurably different
        assert (layer(x).double() - expected).abs().max() > 1e-4


def test_matmul_independent_of_batch_shape() -> None:
    gen = torch.Generator().manual_seed(1)
    raw = quantize_reference(torch.randn(64, 128, generator=gen).numpy(), T.Q8_0).reshape(64, -1)
    layer = QuantLinear(torch.from_numpy(raw), T.Q8_0, 128, 64)
    x = torch.randn(7, 128, generator=gen)
    assert torch.equal(layer(x)[2:3], layer(x[2:3]))


def test_gelu_table_matches_fp16_rounding() -> None:
    x = torch.linspace(-12, 12, 10001)
    y = numerics.gelu_tanh(x)
    exact = torch.nn.functional.gelu(x, approximate="tanh")
    inside = x.abs() < 10
    assert torch.equal(y[inside], y[inside].half().float())  # fp16 results, as ggml's table holds
    assert (y[inside] - exact[inside]).abs().max() < 1e-2
    assert torch.equal(y[x <= -10], torch.zeros_like(y[x <= -10])) and torch.equal(y[x >= 10], x[x >= 10])
    with numerics.float32_numerics():
        assert torch.allclose(numerics.gelu_tanh(x), exact, atol=1e-6)


def test_rmsnorm_sums_in_sequence() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 576, generator=gen) * 3
    norm = RMSNorm(576, 1e-5)
    norm.weight = torch.nn.Parameter(torch.ones(576))
    xs = x.numpy().astype(np.float32)
    mean = (np.cumsum((xs * xs).astype(np.float64), axis=-1)[:, -1:] / 576).astype(np.float32)
    scale = np.float32(1.0) / np.sqrt(mean + np.float32(1e-5))
    assert np.array_equal(norm(x).detach().numpy(), xs * scale)
