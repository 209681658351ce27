"""nn.Modules the loader swaps in for nn.Linear and nn.Embedding: they compute from the quantized bytes."""

from __future__ import annotations

import torch
from torch import nn

from camelid.kernels import native
from camelid.kernels.reference import dequant_rows
from camelid.kernels.table import matmul


class QuantLinear(nn.Module):
    """y = x @ W.T + b with W kept as raw ggml bytes [out_features, row_bytes] (a view of the model file)."""

    def __init__(self, weight: torch.Tensor, ggml_type: int, in_features: int, out_features: int,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)
        self.ggml_type, self.in_features, self.out_features = ggml_type, in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        return fused_linear(x, [self])[0]

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, type={self.ggml_type}"


class QuantEmbedding(nn.Module):
    """Row lookup in a quantized [num_embeddings, row_bytes] table: only the rows asked for are dequantized."""

    def __init__(self, weight: torch.Tensor, ggml_type: int, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.ggml_type, self.num_embeddings, self.embedding_dim = ggml_type, num_embeddings, embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # [...] -> [..., dim]
        flat = ids.reshape(-1)
        rows = dequant_rows(self.weight, self.ggml_type, flat, self.embedding_dim)
        return rows.view(*ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"num={self.num_embeddings}, dim={self.embedding_dim}, type={self.ggml_type}"


def fused_linear(x: torch.Tensor, layers: list[QuantLinear]) -> list[torch.Tensor]:
    """[layer(x) for layer in layers] for layers that share the input x [..., in]: with the native kernels, one
    call that quantizes x once and computes all outputs in one parallel region (results identical to separate
    calls). The argument arrays are built on first use and kept on the first layer."""
    first = layers[0]
    key = tuple(id(layer) for layer in layers)
    fused = first.__dict__.get("_native_fused", {}).get(key)
    if fused is None and all(layer.ggml_type in native.NATIVE_TYPES for layer in layers):
        fused = native.FusedWeights([layer.weight for layer in layers], [int(layer.ggml_type) for layer in layers],
                                    [layer.out_features for layer in layers], first.in_features)
        first.__dict__.setdefault("_native_fused", {})[key] = fused
    out = native.matmul_fused(x, fused) if fused is not None else None
    if out is None:
        outputs = [matmul(x, layer.weight, layer.ggml_type, layer.out_features, layer.in_features)
                   for layer in layers]
    else:
        outputs = list(out.split([layer.out_features for layer in layers], dim=-1)) if len(layers) > 1 else [out]
    return [y + layer.bias if layer.bias is not None else y for y, layer in zip(outputs, layers, strict=True)]


def apply_linears(x: torch.Tensor, modules: list[nn.Module]) -> list[torch.Tensor]:
    """[module(x) for module in modules], fused into one native call when they are all QuantLinear."""
    if all(isinstance(module, QuantLinear) for module in modules):
        return fused_linear(x, modules)  # type: ignore[arg-type]
    return [module(x) for module in modules]
