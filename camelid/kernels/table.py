"""The kernel table: one swappable matmul function per ggml type."""

from __future__ import annotations

from collections.abc import Callable

import torch

from camelid.kernels.reference import reference_matmul

# kernel(x [..., n_in], weight uint8 [n_out, row_bytes], ggml_type, n_out, n_in) -> [..., n_out] float32
MatmulKernel = Callable[[torch.Tensor, torch.Tensor, int, int, int], torch.Tensor]

MATMUL: dict[int, MatmulKernel] = {}


def register_matmul(ggml_type: int, kernel: MatmulKernel) -> None:
    """Make `kernel` the matmul used for weights of `ggml_type`."""
    MATMUL[ggml_type] = kernel


def matmul(x: torch.Tensor, weight: torch.Tensor, ggml_type: int, n_out: int, n_in: int) -> torch.Tensor:
    """x @ W.T through the registered kernel for W's type, else the reference path."""
    return MATMUL.get(ggml_type, reference_matmul)(x, weight, ggml_type, n_out, n_in)


def _register_native() -> None:
    from camelid.kernels import native

    native.register()  # each native kernel falls back by itself where it cannot run


_register_native()
