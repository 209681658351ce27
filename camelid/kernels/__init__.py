"""Quantized linear algebra behind one small function table.

`MATMUL[ggml_type]` is the kernel a `QuantLinear` calls; a type with no entry uses `reference_matmul`, the
dequantize-then-matmul path that is always correct. A fast kernel registers itself with `register_matmul` and is
tested against the reference. The names below load on first use: `camelid.kernels.library` (the native library
through ctypes) stays importable without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"MATMUL": "table", "MatmulKernel": "table", "matmul": "table", "register_matmul": "table",
          "QuantEmbedding": "layers", "QuantLinear": "layers", "apply_linears": "layers", "fused_linear": "layers",
          "dequant_rows": "reference", "reference_matmul": "reference"}

__all__ = ["MATMUL", "MatmulKernel", "QuantEmbedding", "QuantLinear", "apply_linears", "dequant_rows", "fused_linear", "matmul", "reference_matmul", "register_matmul"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'camelid.kernels' has no attribute {name!r}")
    return getattr(importlib.import_module(f"camelid.kernels.{_HOMES[name]}"), name)
