"""The native Q4_1 kernel: ggml's arithmetic (exact block formula, float32 lane order), shape independence,
and the torch fallback."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf.constants import GGMLQuantizationType as T

from camelid.gguf import GGUFFile
from camelid.kernels import QuantLinear, native, numerics, reference_matmul
from camelid.models.native_model import NativeModel
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
    native_out = native.matmul_blocks(x, layer.weight, T.Q4_1, 40, 256)
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


def quant_layer(ggml_type: int, n_out: int, n_in: int, seed: int) -> QuantLinear:
    gen = torch.Generator().manual_seed(seed)
    raw = quantize_reference(torch.randn(n_out, n_in, generator=gen).numpy(), ggml_type).reshape(n_out, -1)
    return QuantLinear(torch.from_numpy(raw), ggml_type, n_in, n_out)


@needs_native
@pytest.mark.parametrize("ggml_type", [T.Q4_0, T.Q5_0, T.Q8_0])
def test_native_q0_formats_match_block_formula(ggml_type: int) -> None:
    layer = quant_layer(ggml_type, 48, 320, 6)
    x = torch.randn(9, 320, generator=torch.Generator().manual_seed(7))  # 2 groups of 4 (batch path) and one row
    native_out = native.matmul_blocks(x, layer.weight, ggml_type, 48, 320)
    exact = reference_matmul(x, layer.weight, ggml_type, 48, 320)
    assert torch.equal(native_out[8], native.matmul_blocks(x[8:], layer.weight, ggml_type, 48, 320)[0])
    assert (native_out - exact).abs().max() < 1e-4
    assert not torch.equal(native_out, exact)
    assert torch.equal(layer(x)[1:2], layer(x[1:2]))  # a row's result does not depend on the others


@needs_native
@pytest.mark.parametrize("ggml_type", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q8_0])
@pytest.mark.parametrize("n_tokens", [8, 16, 70, 133, 300])  # 16-row tiles, leftovers, a second tile of 256 rows
def test_native_q0_batches_equal_rows_alone(ggml_type: int, n_tokens: int) -> None:
    """Large batches read Q4_0/Q5_0 rows unpacked to Q8_0 (Q4_1 rows to bytes) once per tile and take 16 rows at a
    time: every result stays bit-identical to the same row computed alone (the single-row kernel reads the original
    blocks)."""
    layer = quant_layer(ggml_type, 40, 640, 8)
    x = torch.randn(n_tokens, 640, generator=torch.Generator().manual_seed(9))
    batch = native.matmul_blocks(x, layer.weight, ggml_type, 40, 640)
    for t in range(n_tokens):
        assert torch.equal(batch[t], native.matmul_blocks(x[t:t + 1], layer.weight, ggml_type, 40, 640)[0]), t


@needs_native
def test_native_swiglu_is_silu_times_up() -> None:
    gen = torch.Generator().manual_seed(8)
    gate, up = torch.randn(3, 100, generator=gen) * 6, torch.randn(3, 100, generator=gen)  # 100: a scalar tail
    out = native.swiglu(gate, up)
    expected = (gate.double() / (1 + torch.exp(-gate.double())) * up.double()).float()
    assert out is not None and out.shape == gate.shape
    assert torch.allclose(out, expected, rtol=4e-7, atol=1e-30)
    with numerics.float32_numerics():
        assert native.swiglu(gate, up) is None  # plain float32 numerics take the torch path


def random_cache(n_slots: int, n_kv_heads: int, n_ctx: int, dim: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randn(n_slots, n_kv_heads, n_ctx, dim, generator=gen).half()
    values = torch.randn(n_slots, n_kv_heads, n_ctx, dim, generator=gen).half()
    return keys, values


@needs_native
@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("n_tokens", [1, 4])
def test_native_attention_matches_float64(window: int | None, n_tokens: int) -> None:
    from camelid.kernels.attention import attention_mask, grouped_attention

    keys, values = random_cache(3, 2, 40, 32, 9)
    gen = torch.Generator().manual_seed(10)
    q = torch.randn(2, n_tokens, 6, 32, generator=gen)  # 6 query heads share 2 KV heads
    positions = torch.tensor([[7 + t for t in range(n_tokens)], [20 + t for t in range(n_tokens)]])
    if n_tokens > 1:
        positions[1, -1] = -1  # one padding token
    slots = torch.tensor([2, 0])
    n_keys = int(positions.max()) + 1
    out = native.attention(q, keys, values, slots, positions, n_keys, window, 0.3)
    mask = attention_mask(positions, n_keys, window)
    expected = grouped_attention(q.transpose(1, 2), keys[slots, :, :n_keys].float(),
                                 values[slots, :, :n_keys].float(), mask, 0.3).transpose(1, 2)
    real = positions >= 0
    assert out is not None and out.shape == (2, n_tokens, 6, 32)
    assert (out[real] - expected[real]).abs().max() < 5e-3  # q and the probabilities pass through fp16, as in ggml
    assert torch.equal(out[~real], torch.zeros_like(out[~real]))


@needs_native
@pytest.mark.parametrize("window", [None, 5])
@pytest.mark.parametrize("dim", [64, 80])  # whole tiles of 64 values, and a last tile of 16
def test_native_prefill_attention_matches_float64(window: int | None, dim: int) -> None:
    """One sequence of 24 tokens: the path that widens the cache to float32 and sums each lane over a tile."""
    from camelid.kernels.attention import attention_mask, grouped_attention

    keys, values = random_cache(1, 2, 64, dim, 11)
    q = torch.randn(1, 24, 4, dim, generator=torch.Generator().manual_seed(12))
    positions = torch.arange(5, 29)[None]
    slots = torch.tensor([0])
    out = native.attention(q, keys, values, slots, positions, 29, window, 0.2)
    expected = grouped_attention(q.transpose(1, 2), keys[slots, :, :29].float(), values[slots, :, :29].float(),
                                 attention_mask(positions, 29, window), 0.2).transpose(1, 2)
    assert out is not None and out.shape == (1, 24, 4, dim)
    assert (out - expected).abs().max() < 5e-3


@needs_native
@pytest.mark.parametrize("n_tokens", [1, 24])
def test_native_attention_heads_of_a_group_equal_each_head_alone(n_tokens: int) -> None:
    """The query heads of a KV group are computed together (up to four at a time, sharing the key and value loads):
    each head's output is bit for bit the one it gets alone (6 heads per KV head: a group of 4, then 2)."""
    keys, values = random_cache(1, 2, 64, 64, 13)
    q = torch.randn(1, n_tokens, 12, 64, generator=torch.Generator().manual_seed(14))
    positions = torch.arange(30, 30 + n_tokens)[None]
    slots = torch.tensor([0])
    n_keys = 30 + n_tokens
    together = native.attention(q, keys, values, slots, positions, n_keys, None, 0.2)
    assert together is not None
    for h in range(12):
        g = h // 6
        alone = native.attention(q[:, :, h:h + 1].contiguous(), keys[:, g:g + 1].contiguous(),
                                 values[:, g:g + 1].contiguous(), slots, positions, n_keys, None, 0.2)
        assert alone is not None and torch.equal(together[:, :, h:h + 1], alone)


@needs_native
def test_native_attention_orders_differ_as_ggml_does() -> None:
    """One token alone uses ggml_vec_dot_f16's order, two or more tinyBLAS's: the same query can round differently."""
    keys, values = random_cache(1, 1, 300, 64, 11)
    gen = torch.Generator().manual_seed(12)
    q = torch.randn(1, 2, 1, 64, generator=gen)
    positions, slots = torch.tensor([[298, 299]]), torch.tensor([0])
    pair = native.attention(q, keys, values, slots, positions, 300, None, 0.125)
    alone = native.attention(q[:, 1:], keys, values, slots, positions[:, 1:], 300, None, 0.125)
    assert pair is not None and alone is not None
    assert (pair[:, 1:] - alone).abs().max() < 1e-5
    assert not torch.equal(pair[:, 1:], alone)


@needs_native
@pytest.mark.parametrize("name", ["smollm2:135m", "gemma3:270m"])
def test_native_block_equals_the_layer_by_op_path(name: str) -> None:
    """The whole-layer native call composes the same kernels as the Python forward: identical logits, for a
    prompt batch and for a one-token decode step after it."""
    import camelid

    model = camelid.load(name).model
    tokens = torch.tensor([[2, 818, 5279, 529, 7001, 3761, 107]])
    step = torch.tensor([[9259]])

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        cache = model.new_cache(1, 64)
        slots = torch.tensor([0])
        with torch.inference_mode():
            prompt = model(tokens, torch.arange(7)[None], cache, slots)
            decode = model(step, torch.tensor([[7]]), cache, slots)
        return prompt, decode

    fused = run()
    for block in model.blk:
        block.__dict__["_native_spec"] = None  # this block cannot take the native path
    by_op = run()
    for block in model.blk:
        del block.__dict__["_native_spec"]
    assert torch.equal(fused[0], by_op[0]) and torch.equal(fused[1], by_op[1])


def random_k_quant_rows(ggml_type: int, n_out: int, n_in: int, seed: int) -> torch.Tensor:
    """Random bytes in the K-quant block layout, with sane fp16 scales (gguf has no K-quant quantizer to call)."""
    from camelid.quant import row_bytes

    gen = np.random.default_rng(seed)
    raw = gen.integers(0, 256, size=(n_out, row_bytes(ggml_type, n_in)), dtype=np.uint8)
    blocks = raw.reshape(n_out, n_in // 256, -1)
    scales = gen.uniform(0.001, 0.01, size=blocks.shape[:2] + (2,)).astype(np.float16).view(np.uint8)
    if ggml_type == T.Q4_K:
        blocks[:, :, 0:4] = scales.reshape(blocks.shape[:2] + (4,))  # d, dmin
    else:
        blocks[:, :, 208:210] = scales[:, :, :2]  # d (the last field of a Q6_K block)
    return torch.from_numpy(raw)


@needs_native
@pytest.mark.parametrize("ggml_type", [T.Q4_K, T.Q6_K])
@pytest.mark.parametrize("n_tokens", [1, 3, 5, 12, 21])  # single rows, 4-row (Q4_K), tiled (Q6_K) and 8-row paths
def test_native_k_quants_match_block_formula(ggml_type: int, n_tokens: int) -> None:
    weight = random_k_quant_rows(ggml_type, 24, 512, 13)
    x = torch.randn(n_tokens, 512, generator=torch.Generator().manual_seed(14))
    native_out = native.matmul_blocks(x, weight, ggml_type, 24, 512)
    exact = reference_matmul(x, weight, ggml_type, 24, 512)
    assert native_out.shape == (n_tokens, 24)
    assert (native_out - exact).abs().max() <= 1e-5 * exact.abs().max()


@needs_native
@pytest.mark.parametrize("ggml_type", [T.Q4_K, T.Q6_K])
def test_native_k_quant_tiles_of_16_equal_the_8_row_path(ggml_type: int) -> None:
    """In a batch of 24 rows, rows 0-15 take the 16-row tile and rows 16-23 the 8-row kernel; rotating the batch by 8
    swaps which rows take which: every row's result is bit-identical either way (24 rows: one ggml order for all)."""
    weight = random_k_quant_rows(ggml_type, 40, 768, 15)
    x = torch.randn(24, 768, generator=torch.Generator().manual_seed(16))
    first = native.matmul_blocks(x, weight, ggml_type, 40, 768)
    rotated = native.matmul_blocks(torch.cat([x[16:], x[:16]]), weight, ggml_type, 40, 768)
    assert torch.equal(torch.cat([first[16:], first[:16]]), rotated)
    exact = reference_matmul(x, weight, ggml_type, 40, 768)
    assert (first - exact).abs().max() <= 1e-5 * exact.abs().max()


@needs_native
def test_the_loaded_library_was_built_from_these_sources() -> None:
    """Whether the package build or the first-use build made it, its stamp is the digest of the current sources:
    a library from other sources (an editable install whose C changed since) is never used."""
    from camelid.kernels import build

    lib = native.library()
    lib.camelid_digest.restype = ctypes.c_char_p
    assert lib.camelid_digest().decode() == build.digest()
    assert len(build.digest()) == 16


@needs_native
@pytest.mark.parametrize("n", [64, 30])  # eight rows at a time (n a multiple of 4), and the row-by-row loop
def test_native_rmsnorm_sums_in_order(n: int) -> None:
    """ggml's RMSNorm: float32 squares added in order in a double, mean rounded to float, 1 / sqrtf(mean + eps)."""
    x = torch.randn(19, n, generator=torch.Generator().manual_seed(13)) * 3
    weight = torch.randn(n, generator=torch.Generator().manual_seed(14))
    squares = (x * x).double().numpy()
    sums = np.cumsum(squares, axis=1)[:, -1]  # numpy's cumsum adds in order
    mean = (sums / n).astype(np.float32)
    scale = np.float32(1.0) / np.sqrt(mean + np.float32(1e-6), dtype=np.float32)
    expected = (x.numpy() * scale[:, None]) * weight.numpy()
    assert np.array_equal(native.rmsnorm(x, weight, 1e-6).numpy(), expected)
    inplace = x.clone()
    native.library().camelid_rmsnorm(inplace.data_ptr(), weight.data_ptr(), inplace.data_ptr(), 19, n,
                                     ctypes.c_float(1e-6))
    assert np.array_equal(inplace.numpy(), expected)


def q8_K_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ggml's quantize_row_q8_K_ref for rows of 256: (d [B], qs [B, 256], bsums [B, 16])."""
    blocks = x.reshape(-1, 256)
    first = np.abs(blocks).argmax(axis=1)  # argmax: the first of equal magnitudes, as ggml's strict comparison
    max_value = blocks[np.arange(len(blocks)), first]
    with np.errstate(all="ignore"):  # all-zero blocks: their values are replaced below
        iscale = np.float32(-127.0) / max_value
        qs = np.minimum(np.rint(iscale[:, None] * blocks), 127).astype(np.int8)
    qs[max_value == 0] = 0
    bsums = qs.reshape(-1, 16, 16).astype(np.int32).sum(axis=2).astype(np.int16)
    d = np.where(max_value == 0, np.float32(0), np.float32(1) / iscale).astype(np.float32)
    return d, qs, bsums


@needs_native
def test_native_quantize_q8_K_matches_ggml_reference() -> None:
    rng = np.random.default_rng(15)
    x = (rng.standard_normal(256 * 12) * 7).astype(np.float32)
    x[256:512] = 0.0  # an all-zero block
    x[600], x[700] = 40.0, -40.0  # equal magnitudes: the first one sets the scale
    out = np.zeros(292 * 12, np.uint8)
    native.library().camelid_quantize_q8_K.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    native.library().camelid_quantize_q8_K(x.ctypes.data, out.ctypes.data, x.size)
    blocks = out.reshape(12, 292)
    d, qs, bsums = q8_K_reference(x)
    assert np.array_equal(blocks[:, :4].copy().view(np.float32)[:, 0], d)
    assert np.array_equal(blocks[:, 4:260].view(np.int8), qs)
    assert np.array_equal(blocks[:, 260:].copy().view(np.int16), bsums)


@needs_native
def test_native_geglu_vector_lanes_equal_the_scalar_path() -> None:
    """The kernel takes 8 values at a time and the tail one by one: every value gives the same bits either way."""
    rng = np.random.default_rng(16)
    special = [-10.0, 10.0, -10.0001, 10.0001, -9.9999, 9.9999, 0.0, -0.0, np.inf, -np.inf, 65504.0, 70000.0, 1e-8,
               3.3, -3.3, 0.5]
    values = np.concatenate([np.array(special, np.float32), (rng.standard_normal(48) * 6).astype(np.float32)])
    up = rng.standard_normal(values.size).astype(np.float32)
    lib = native.library()

    def geglu(g: np.ndarray, u: np.ndarray) -> np.ndarray:
        g, u = np.ascontiguousarray(g), np.ascontiguousarray(u)
        y = np.empty_like(g)
        lib.camelid_geglu(g.ctypes.data, u.ctypes.data, y.ctypes.data, 1, g.size)
        return y

    vector = geglu(values, up)  # 64 values: all in the 8-wide path
    for i in range(values.size):
        tail = geglu(np.concatenate([values[:8], values[i:i + 1]]), np.concatenate([up[:8], up[i:i + 1]]))[8]
        assert vector[i].tobytes() == tail.tobytes(), (i, values[i])


AVX2_LOGITS = """
import sys
import numpy as np
from camelid.gguf import GGUFFile
from camelid.models.native_model import NativeModel
model = NativeModel.create(GGUFFile(sys.argv[1]), 128)
ids = [int(i) for i in sys.argv[3].split(",")]
np.save(sys.argv[2], np.stack([model.forward(ids[:40], 0), model.forward(ids[40:41], 40)]))
"""


@needs_native
@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_avx2_paths_equal_the_avx512_paths(model: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """CAMELID_NO_AVX512=1 takes the AVX2 kernels (what a CPU without AVX-512 runs): a 40-token prefill (the
    batched tiles, grouped-head attention) and a decode step give the same logits bit for bit."""
    path = request.getfixturevalue(f"{model}_path")
    ids = np.random.default_rng(5).integers(100, 20000, 41).tolist()
    out = tmp_path / "avx2.npy"
    env = dict(os.environ, CAMELID_NO_AVX512="1")
    subprocess.run([sys.executable, "-c", AVX2_LOGITS, str(path), str(out), ",".join(map(str, ids))], env=env,
                   check=True)
    native = NativeModel.create(GGUFFile(path), 128)
    assert native is not None
    here = np.stack([native.forward(ids[:40], 0), native.forward(ids[40:41], 40)])
    assert np.array_equal(np.load(out), here)
