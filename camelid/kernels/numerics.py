"""llama.cpp's CPU numerics, reproduced so that camelid's logits match llama.cpp's, not just approximate them.

ggml multiplies a quantized weight by activations that it first quantizes to the weight's "vec_dot type":
8-bit blocks of 32 (Q8_0, Q8_1) for the legacy formats and of 256 (Q8_K) for the K-quants, fp16 for F16 weights.
`as_ggml_activations` returns the activations those blocks stand for, so a float32 matmul on them computes what
ggml's integer dot products compute (up to float summation order). Measured on the golden logits, this brings
camelid closer to llama.cpp (SmolLM2 max |Δlogit| 0.86 → 0.68, Gemma-3 1.64 → 1.20).

`GGML_NUMERICS` switches it off for comparisons against float32 references (HF transformers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from gguf.constants import GGMLQuantizationType as T

GGML_NUMERICS = True

_Q8_0_USERS = {T.Q4_0, T.Q5_0, T.Q8_0}
Q8_1_USERS = {T.Q4_1, T.Q5_1}
_Q8_K_USERS = {T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K}


@contextlib.contextmanager
def float32_numerics() -> Iterator[None]:
    """Within the block, compute in plain float32 (no activation quantization)."""
    global GGML_NUMERICS
    saved, GGML_NUMERICS = GGML_NUMERICS, False
    try:
        yield
    finally:
        GGML_NUMERICS = saved


def _blocks(x: torch.Tensor, size: int) -> torch.Tensor:
    return x.reshape(-1, size)


def q8_blocks(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_0/Q8_1 quantization as ggml's AVX2 path makes it: per 32 values d = amax/127 (float32; stored as fp16),
    q = round_half_even(x * 127/amax). Returns q [n, 32] and the float32 d [n, 1]."""
    blocks = _blocks(x.float(), 32)  # [n, 32]
    amax = blocks.abs().amax(dim=1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    return torch.round(blocks * inv), amax / 127.0


def q8_0_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """The activations a Q8_0 (or Q8_1) block stands for: q * fp16(d)."""
    q, d = q8_blocks(x)
    return (q * d.half().float()).reshape(x.shape)


def q8_1_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_1 blocks of x: the activations they stand for (q * fp16(d), shaped like x) and, per block, how much the
    sum ggml stores, s = fp16(d * Σq), exceeds fp16(d) * Σq (float64 [..., n_blocks])."""
    q, d = q8_blocks(x)  # [n, 32], [n, 1]
    d_stored = d.half()
    stored_sum = (d * q.sum(dim=1, keepdim=True)).half().double()
    implied_sum = d_stored.double() * q.double().sum(dim=1, keepdim=True)
    delta = (stored_sum - implied_sum).reshape(*x.shape[:-1], -1)
    return (q * d_stored.float()).reshape(x.shape), delta


def q8_1_min_correction(delta: torch.Tensor, weight: torch.Tensor, ggml_type: int, n_out: int) -> torch.Tensor:
    """What ggml's Q4_1/Q5_1 dot product adds beyond x̃ @ W̃ᵀ: per block it adds m_w * s where the dequantized
    product adds m_w * fp16(d) * Σq. `delta` from `q8_1_activations`; returns [..., n_out] (float64). Measured on
    SmolLM2's first projection this takes the error against llama.cpp from 2.5e-3 to 8e-7."""
    type_size = 20 if ggml_type == T.Q4_1 else 24
    mins = weight.reshape(n_out, -1, type_size)[:, :, 2:4].contiguous().view(torch.float16)  # [n_out, nb, 1]
    return delta @ mins[..., 0].double().T  # [..., n_out]


def q8_k_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """Q8_K: per 256, iscale = -127/max (max = the signed value of largest magnitude), q = min(127, rint(x*iscale)),
    d = 1/iscale in float32."""
    blocks = _blocks(x.float(), 256)  # [n, 256]
    idx = blocks.abs().argmax(dim=1, keepdim=True)
    signed_max = blocks.gather(1, idx)
    nonzero = signed_max != 0
    iscale = torch.where(nonzero, -127.0 / torch.where(nonzero, signed_max, 1.0), torch.zeros_like(signed_max))
    q = torch.clamp(torch.round(blocks * iscale), max=127.0)
    d = torch.where(nonzero, 1.0 / torch.where(nonzero, iscale, 1.0), torch.zeros_like(iscale))
    return (q * d).reshape(x.shape)


def as_ggml_activations(x: torch.Tensor, weight_type: int) -> torch.Tensor:
    """The activations ggml's dot product effectively uses against a weight of `weight_type`."""
    if not GGML_NUMERICS:
        return x
    n = x.shape[-1]
    if weight_type in _Q8_0_USERS or weight_type in Q8_1_USERS:
        return q8_0_roundtrip(x) if n % 32 == 0 else x  # Q8_1 differs from Q8_0 only in its extra sum field
    if weight_type in _Q8_K_USERS:
        return q8_k_roundtrip(x) if n % 256 == 0 else x
    if weight_type == T.F16:
        return x.half().float()
    if weight_type == T.BF16:
        return x.bfloat16().float()
    return x


_GELU_TABLE: torch.Tensor | None = None


def _gelu_f32(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)))


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU (tanh approximation). With GGML_NUMERICS as ggml computes it: a table, indexed by the fp16 value of
    the input, of fp16-rounded results; 0 below -10, identity above 10. Against llama.cpp's own GEGLU output on
    Gemma-3 this is bit-exact for 99.96 % of elements, the exact float32 GELU for 0.25 % (max |Δ| 0.05)."""
    if not GGML_NUMERICS:
        return _gelu_f32(x)
    global _GELU_TABLE
    if _GELU_TABLE is None:  # every fp16 bit pattern -> fp16(gelu(value)), 64 Ki entries
        values = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(torch.float16).float()
        _GELU_TABLE = _gelu_f32(values).half().float()
    y = _GELU_TABLE[x.half().view(torch.int16).long() & 0xFFFF]
    y = torch.where(x <= -10.0, torch.zeros_like(y), y)
    return torch.where(x >= 10.0, x, y)
