"""Gated activations glu(gate, up) = activation(gate) * up, as ggml computes them when its numerics are on."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from camelid.kernels import native, numerics


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up; with ggml numerics through ggml_vec_swiglu_f32's arithmetic (native kernel)."""
    out = native.swiglu(gate, up)
    return out if out is not None else F.silu(gate) * up


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU, tanh approximation (see camelid.kernels.numerics.gelu_tanh)."""
    return numerics.gelu_tanh(x)


def geglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(gate) * up; with ggml numerics through ggml_vec_geglu_f32's table (native kernel)."""
    out = native.geglu(gate, up)
    return out if out is not None else numerics.gelu_tanh(gate) * up
