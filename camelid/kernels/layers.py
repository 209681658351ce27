"""nn.Modules the loader swaps in for nn.Linear and nn.Embedding: they compute from the quantized bytes."""

from __future__ import annotations

import torch
from torch import nn

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
        y = matmul(x, self.weight, self.ggml_type, self.out_features, self.in_features)
        return y + self.bias if self.bias is not None else y

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
