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
_Q8_1_USERS = {T.Q4_1, T.Q5_1}
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


def q8_0_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """Q8_0 as ggml's AVX2 path makes it: d = amax/127 stored as fp16, q = round_half_even(x * 127/amax)."""
    blocks = _blocks(x.float(), 32)  # [n, 32]
    amax = blocks.abs().amax(dim=1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    q = torch.round(blocks * inv)
    d = (amax / 127.0).half().float()
    return (q * d).reshape(x.shape)


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
    if weight_type in _Q8_0_USERS or weight_type in _Q8_1_USERS:
        return q8_0_roundtrip(x) if n % 32 == 0 else x  # Q8_1 differs from Q8_0 only in its extra sum field
    if weight_type in _Q8_K_USERS:
        return q8_k_roundtrip(x) if n % 256 == 0 else x
    if weight_type == T.F16:
        return x.half().float()
    if weight_type == T.BF16:
        return x.bfloat16().float()
    return x
