"""The always-correct quantized matmul: dequantize a bounded chunk of rows just in time, then a float32 matmul.

Slow but exact with respect to the dequantized weights; every fast kernel is tested against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from camelid import quant
from camelid.kernels.numerics import as_ggml_activations

CHUNK_ELEMENTS = 1 << 22


def dequant_rows(weight: torch.Tensor, ggml_type: int, rows: slice | torch.Tensor, n_cols: int) -> torch.Tensor:
    """Float32 [n_rows, n_cols] of the selected rows of a quantized [out, row_bytes] byte matrix."""
    selected = weight[rows]
    return quant.dequantize(selected, ggml_type, (selected.shape[0], n_cols))


def reference_matmul(x: torch.Tensor, weight: torch.Tensor, ggml_type: int, n_out: int, n_in: int) -> torch.Tensor:
    """x [..., n_in] @ W.T -> [..., n_out], W given as raw ggml bytes [n_out, row_bytes]."""
    x = as_ggml_activations(x, ggml_type)
    step = max(1, CHUNK_ELEMENTS // n_in)
    if step >= n_out:
        return F.linear(x, dequant_rows(weight, ggml_type, slice(None), n_in))
    out = x.new_empty(*x.shape[:-1], n_out)
    for start in range(0, n_out, step):
        stop = min(n_out, start + step)
        out[..., start:stop] = F.linear(x, dequant_rows(weight, ggml_type, slice(start, stop), n_in))
    return out
