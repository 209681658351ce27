"""camelid.quant against gguf's numpy reference: bit-exact dequantization, registry, row sizes."""

from __future__ import annotations

import math
import warnings
import zlib

import gguf
import gguf.quants
import numpy as np
import pytest
import torch

import camelid.quant.base as quant_base
from camelid.errors import UnsupportedModel
from camelid.quant import (
    QuantFormat,
    dequantize,
    get_format,
    quantize_reference,
    registered_formats,
    row_bytes,
)

Q = gguf.GGMLQuantizationType

# Byte offsets of the float16 scale fields inside one block (written independently of the implementation,
# from ggml-common.h). Random bytes there would often be NaN/inf, so the tests overwrite them.
F16_FIELDS: dict[Q, tuple[int, ...]] = {
    Q.F32: (),
    Q.F16: (),  # handled separately: the data itself is f16
    Q.BF16: (),
    Q.Q8_0: (0,),
    Q.Q4_0: (0,),
    Q.Q4_1: (0, 2),
    Q.Q5_0: (0,),
    Q.Q5_1: (0, 2),
    Q.Q2_K: (80, 82),
    Q.Q3_K: (108,),
    Q.Q4_K: (0, 2),
    Q.Q5_K: (0, 2),
    Q.Q6_K: (208,),
}
TYPES = list(F16_FIELDS)
SHAPES_IN_BLOCKS = [(1, 1), (7, 3), (2, 3, 2), (33, 4)]  # last dim in blocks per row


def random_blocks(qtype: Q, n_blocks: int, seed: int) -> np.ndarray:
    """uint8 [n_blocks, type_size] of random bytes with finite f16 scale fields (block 0's scales = -0.0)."""
    rng = np.random.default_rng(seed)
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype == Q.F16:
        bits = raw.view(np.uint16)
        nan = (bits & 0x7C00) == 0x7C00
        bits[nan] &= np.uint16(0xFC00)  # NaN -> +-inf; keeps normals, subnormals, zeros and infs
    for off in F16_FIELDS[qtype]:
        scales = (rng.standard_normal(n_blocks) * 0.01).astype(np.float16)
        if n_blocks > 1:
            scales[0] = np.float16(-0.0)
        raw[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw


def reference(raw: np.ndarray, qtype: Q, shape: tuple[int, ...]) -> np.ndarray:
    rb = row_bytes(qtype, shape[-1])
    return gguf.quants.dequantize(raw.reshape(*shape[:-1], rb), qtype).reshape(shape)


def assert_bit_equal(ours: torch.Tensor, ref: np.ndarray) -> None:
    assert ours.dtype == torch.float32
    assert tuple(ours.shape) == ref.shape
    ours_bits = ours.numpy().view(np.uint32)
    ref_bits = np.ascontiguousarray(ref, dtype=np.float32).view(np.uint32)
    bad = np.flatnonzero(ours_bits != ref_bits)
    if bad.size:
        i = bad[0]
        pytest.fail(f"{bad.size} mismatches, first at {i}: {ours.numpy().flat[i]!r} vs {ref.flat[i]!r}")


@pytest.mark.parametrize("layout", ["flat", "rows"])
@pytest.mark.parametrize("blocks_shape", SHAPES_IN_BLOCKS, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_dequantize_matches_gguf_bit_exact(qtype: Q, blocks_shape: tuple[int, ...], layout: str) -> None:
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    shape = (*blocks_shape[:-1], blocks_shape[-1] * block_size)
    n_blocks = math.prod(blocks_shape)
    raw = random_blocks(qtype, n_blocks, seed=zlib.crc32(f"{qtype.name}{blocks_shape}".encode()))
    rows = math.prod(shape[:-1])
    data = torch.from_numpy(raw.reshape(-1) if layout == "flat" else raw.reshape(rows, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our code must not produce NaN/overflow warnings either
        ours = dequantize(data, qtype, shape)
    with np.errstate(all="ignore"):
        ref = reference(raw, qtype, shape)
    assert_bit_equal(ours, ref)
    assert np.array_equal(data.numpy().reshape(n_blocks, -1), raw)  # input untouched


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_dequantize_blocks_contract(qtype: Q) -> None:
    fmt = get_format(qtype)
    raw = random_blocks(qtype, 5, seed=1)
    out = fmt.dequantize_blocks(torch.from_numpy(raw))
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (5, fmt.block_size)
    with np.errstate(all="ignore"):
        assert_bit_equal(out, gguf.quants.dequantize(raw, qtype).reshape(5, fmt.block_size))
    with pytest.raises(ValueError):
        fmt.dequantize_blocks(torch.from_numpy(raw[:, :-1].copy()))


@pytest.mark.parametrize("qtype", TYPES, ids=lambda t: t.name)
def test_read_only_memmap_input(qtype: Q, tmp_path) -> None:
    """The bytes may be a read-only mapping of the model file: a write would crash, not just fail."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = random_blocks(qtype, 12, seed=2)
    path = tmp_path / "t.bin"
    raw.tofile(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r", shape=(3, 4 * type_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "The given NumPy array is not writable"
        data = torch.from_numpy(mm)
    out = dequantize(data, qtype, (3, 4 * block_size))
    with np.errstate(all="ignore"):
        assert_bit_equal(out, reference(raw, qtype, (3, 4 * block_size)))
    out += 1.0  # the result is ours to modify: it must not alias the mapping
    assert np.array_equal(np.fromfile(path, dtype=np.uint8).reshape(12, -1), raw)


@pytest.mark.parametrize("qtype", [Q.F32, Q.Q4_0, Q.Q3_K, Q.Q6_K], ids=lambda t: t.name)
def test_chunked_dequantize(qtype: Q, monkeypatch: pytest.MonkeyPatch) -> None:
    """Results do not depend on how many blocks are decoded per step (including uneven last steps)."""
    monkeypatch.setattr(quant_base, "_CHUNK_ELEMENTS", 3 * 256)
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    shape = (10, 5 * block_size) if block_size > 1 else (10, 1001)
    raw = random_blocks(qtype, math.prod(shape) // block_size, seed=3)
    with np.errstate(all="ignore"):
        assert_bit_equal(dequantize(torch.from_numpy(raw), qtype, shape), reference(raw, qtype, shape))


def test_f16_nan_stays_nan() -> None:
    bits = np.array([0x7C01, 0x7E00, 0xFE00, 0x7C00, 0x0001], dtype=np.uint16)
    out = dequantize(torch.from_numpy(bits.view(np.uint8)), Q.F16, (5,))
    assert torch.isnan(out[:3]).all()
    assert out[3] == float("inf") and out[4] == 2.0**-24


def test_registry_covers_all_types() -> None:
    formats = registered_formats()
    assert set(formats) == {int(t) for t in TYPES}
    for t in TYPES:
        fmt = get_format(t)
        assert fmt is get_format(int(t))
        assert issubclass(fmt, QuantFormat)
        assert fmt.ggml_type == t and fmt.name == t.name
        assert (fmt.block_size, fmt.type_size) == gguf.GGML_QUANT_SIZES[t]


def test_duplicate_or_wrong_registration_rejected() -> None:
    with pytest.raises(TypeError):

        class Again(QuantFormat):
            ggml_type = Q.Q4_0
            block_size = 32
            type_size = 18

    with pytest.raises(TypeError):

        class WrongSize(QuantFormat):
            ggml_type = Q.IQ4_NL
            block_size = 32
            type_size = 17

    assert Q.IQ4_NL not in registered_formats()
    with pytest.raises(TypeError):
        QuantFormat()


def test_unknown_type_raises_unsupported() -> None:
    with pytest.raises(UnsupportedModel, match=r"^tensor type IQ2_XXS is not supported$"):
        get_format(Q.IQ2_XXS)
    with pytest.raises(UnsupportedModel, match="tensor type 9999 is not supported"):
        get_format(9999)
    with pytest.raises(UnsupportedModel):
        row_bytes(Q.IQ4_XS, 256)
    with pytest.raises(UnsupportedModel):
        dequantize(torch.zeros(136, dtype=torch.uint8), Q.IQ4_XS, (1, 256))


def test_row_bytes() -> None:
    assert row_bytes(Q.F32, 10) == 40
    assert row_bytes(Q.F16, 7) == 14
    assert row_bytes(Q.BF16, 3) == 6
    assert row_bytes(Q.Q8_0, 64) == 68
    assert row_bytes(Q.Q4_0, 4096) == 128 * 18
    assert row_bytes(Q.Q5_1, 32) == 24
    assert row_bytes(Q.Q4_K, 4096) == 16 * 144
    assert row_bytes(Q.Q6_K, 256) == 210
    assert row_bytes(int(Q.Q2_K), 512) == 168
    assert row_bytes(Q.Q4_0, 0) == 0
    for bad in (Q.Q4_0, 33), (Q.Q4_K, 4000), (Q.Q8_0, 16):
        with pytest.raises(UnsupportedModel, match="block size"):
            row_bytes(*bad)


def test_dequantize_rejects_wrong_input() -> None:
    with pytest.raises(ValueError, match="bytes"):
        dequantize(torch.zeros(17, dtype=torch.uint8), Q.Q4_0, (1, 32))
    with pytest.raises(TypeError):
        dequantize(torch.zeros(18, dtype=torch.int8), Q.Q4_0, (1, 32))
    with pytest.raises(UnsupportedModel):
        dequantize(torch.zeros(18, dtype=torch.uint8), Q.Q4_0, (1, 31))


def test_empty_tensor() -> None:
    out = dequantize(torch.zeros(0, dtype=torch.uint8), Q.Q4_K, (0, 256))
    assert out.shape == (0, 256) and out.dtype == torch.float32


NON_K_TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]


@pytest.mark.parametrize("qtype", NON_K_TYPES, ids=lambda t: t.name)
def test_quantize_reference_round_trip(qtype: Q) -> None:
    values = np.random.default_rng(4).standard_normal((4, 64)).astype(np.float32)
    raw = quantize_reference(values, qtype)
    assert raw.dtype == np.uint8 and raw.shape == (4, row_bytes(qtype, 64))
    out = dequantize(torch.from_numpy(raw), qtype, (4, 64)).numpy()
    assert_bit_equal(torch.from_numpy(out), gguf.quants.dequantize(raw, qtype))
    tol = {Q.F32: 0.0, Q.F16: 2e-3, Q.BF16: 2e-2, Q.Q8_0: 0.05, Q.Q5_0: 0.25, Q.Q5_1: 0.25}.get(qtype, 0.5)
    assert np.abs(out - values).max() <= tol * max(1.0, np.abs(values).max())
