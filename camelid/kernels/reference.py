"""The always-correct quantized matmul: dequantize a bounded chunk of rows just in time, then a matmul.

The products are accumulated in float64 and rounded once to float32. With ggml's 8-bit activations every product
is exact, so each output is the exact value of llama.cpp's block-dot-product formula rounded once — and, above all,
the same whatever the batch shape: a float32 GEMM rounds differently for 1 row than for n rows, and the next
layer's activation quantization turns those 1e-7 differences into ~0.3 logits, so decode, batched prefill and
prefix reuse would disagree. Slow but exact; every fast kernel is tested against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from camelid import quant
from camelid.kernels import numerics
from camelid.kernels.numerics import as_ggml_activations

CHUNK_ELEMENTS = 1 << 21  # dequantize at most ~16 MB (as float64) of weights at a time


def dequant_rows(weight: torch.Tensor, ggml_type: int, rows: slice | torch.Tensor, n_cols: int) -> torch.Tensor:
    """Float32 [n_rows, n_cols] of the selected rows of a quantized [out, row_bytes] byte matrix."""
    selected = weight[rows]
    return quant.dequantize(selected, ggml_type, (selected.shape[0], n_cols))


def reference_matmul(x: torch.Tensor, weight: torch.Tensor, ggml_type: int, n_out: int, n_in: int) -> torch.Tensor:
    """x [..., n_in] @ W.T -> [..., n_out], W given as raw ggml bytes [n_out, row_bytes]."""
    correction = None
    if numerics.GGML_NUMERICS and ggml_type in numerics.Q8_1_USERS and n_in % 32 == 0:
        x_blocks, delta = numerics.q8_1_activations(x)
        x64 = x_blocks.double()
        correction = numerics.q8_1_min_correction(delta, weight, ggml_type, n_out)
    else:
        x64 = as_ggml_activations(x, ggml_type).double()
    step = max(1, CHUNK_ELEMENTS // n_in)
    out = torch.empty(*x.shape[:-1], n_out, dtype=torch.float32)
    for start in range(0, n_out, step):
        stop = min(n_out, start + step)
        rows = dequant_rows(weight, ggml_type, slice(start, stop), n_in).double()
        out[..., start:stop] = F.linear(x64, rows)
    if correction is not None:
        out += correction
    return out
