"""Quantized linear algebra behind one small function table.

`MATMUL[ggml_type]` is the kernel a `QuantLinear` calls; a type with no entry uses `reference_matmul`, the
dequantize-then-matmul path that is always correct. A fast kernel registers itself with `register_matmul` and is
tested against the reference.
"""

from __future__ import annotations

from camelid.kernels import native
from camelid.kernels.layers import QuantEmbedding, QuantLinear, apply_linears, fused_linear
from camelid.kernels.reference import dequant_rows, reference_matmul
from camelid.kernels.table import MATMUL, MatmulKernel, matmul, register_matmul

native.register()

__all__ = ["MATMUL", "MatmulKernel", "QuantEmbedding", "QuantLinear", "apply_linears", "dequant_rows", "fused_linear",
           "matmul",
           "reference_matmul", "register_matmul"]
