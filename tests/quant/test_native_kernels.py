"""The native Q4_1 kernel: ggml's arithmetic (exact block formula, float32 lane order), shape independence,
and the torch fallback."""

from __future__ import annotations

import pytest
import torch
from gguf.constants import GGMLQuantizationType as T

from camelid.kernels import QuantLinear, native, numerics, reference_matmul
from camelid.quant import quantize_reference

needs_native = pytest.mark.skipif(native.library() is None, reason="no C compiler or no AVX2/FMA/F16C here")


def q4_1_layer(n_out: int, n_in: int, seed: int) -> QuantLinear:
    gen = torch.Generator().manual_seed(seed)
    raw = quantize_reference(torch.randn(n_out, n_in, generator=gen).numpy(), T.Q4_1).reshape(n_out, -1)
    return QuantLinear(torch.from_numpy(raw), T.Q4_1, n_in, n_out)


@needs_native
def test_native_matches_ggml_formula() -> None:
    layer = q4_1_layer(40, 256, 0)
    x = torch.randn(2, 3, 256, generator=torch.Generator().manual_seed(1))
    native_out = native.matmul_q4_1(x, layer.weight, T.Q4_1, 40, 256)
    exact = reference_matmul(x, layer.weight, T.Q4_1, 40, 256)  # float64 accumulation of the same formula
    assert native_out.shape == (2, 3, 40)
    assert (native_out - exact).abs().max() < 1e-5  # float32 lane sums vs one rounding: a few ulps
    assert not torch.equal(native_out, exact)  # it really is ggml's float32 order, not the float64 path


@needs_native
def test_native_is_independent_of_batch_shape() -> None:
    layer = q4_1_layer(64, 128, 2)
    x = torch.randn(9, 128, generator=torch.Generator().manual_seed(3))
    assert torch.equal(layer(x)[4:5], layer(x[4:5]))


def test_float32_numerics_bypass_native() -> None:
    layer = q4_1_layer(16, 64, 4)
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(5))
    with numerics.float32_numerics():
        y = layer(x)
        assert torch.equal(y, reference_matmul(x, layer.weight, T.Q4_1, 16, 64))
