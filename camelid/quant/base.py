"""The quant-format registry and the tensor-level entry points.

Every ggml tensor type camelid can read is one subclass of :class:`QuantFormat`. A subclass that sets
``ggml_type`` registers itself (``__init_subclass__``) under that ggml type id; :func:`get_format` looks it
up. The format classes only know how to turn a batch of raw blocks into floats
(``dequantize_blocks``: uint8 ``[n_blocks, type_size]`` -> float32 ``[n_blocks, block_size]``);
:func:`dequantize` turns the raw bytes of a whole tensor into a float32 tensor of the requested shape,
a bounded number of blocks at a time so the temporaries stay small.

The small bit-unpacking helpers used by the formats (:func:`f16_at`, :func:`bit_planes`,
:func:`bit_fields`) also live here. All of them only read their input: they never write into the
caller's bytes, which may be a read-only view over a memory-mapped file.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from camelid.errors import UnsupportedModel

# Upper bound on the elements dequantized per step of `dequantize` (the output of one step is
# 4 MiB of float32; the integer temporaries of the K-quants are a few times that).
_CHUNK_ELEMENTS = 1 << 20

_REGISTRY: dict[int, type[QuantFormat]] = {}


def _type_label(ggml_type: int) -> str:
    """``"Q4_K"`` for a ggml type id gguf knows, else the number itself."""
    try:
        return GGMLQuantizationType(int(ggml_type)).name
    except ValueError:
        return str(int(ggml_type))


class QuantFormat:
    """One ggml tensor type. Subclasses set the four class attributes and ``dequantize_blocks``.

    A subclass that defines ``ggml_type`` registers itself by that id; ``name`` defaults to gguf's name
    for the id, and ``block_size`` / ``type_size`` are checked against ``gguf.GGML_QUANT_SIZES``.
    Formats are never instantiated: everything is a classmethod.
    """

    ggml_type: ClassVar[int]  # gguf.GGMLQuantizationType value
    name: ClassVar[str]  # "Q4_K", ...
    block_size: ClassVar[int]  # elements per block
    type_size: ClassVar[int]  # bytes per block

    def __init__(self) -> None:
        raise TypeError("quant formats are used through their classmethods, never instantiated")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "ggml_type" not in cls.__dict__:
            return  # an intermediate base class: nothing to register
        qtype = GGMLQuantizationType(int(cls.ggml_type))
        cls.ggml_type = qtype
        if "name" not in cls.__dict__:
            cls.name = qtype.name
        expected = GGML_QUANT_SIZES[qtype]
        if (cls.block_size, cls.type_size) != expected:
            raise TypeError(
                f"{cls.__qualname__}: block_size/type_size {(cls.block_size, cls.type_size)} "
                f"differ from ggml's {expected} for {qtype.name}"
            )
        if int(qtype) in _REGISTRY:
            raise TypeError(f"{qtype.name} is already registered by {_REGISTRY[int(qtype)].__qualname__}")
        _REGISTRY[int(qtype)] = cls

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        """uint8 ``[n_blocks, type_size]`` -> float32 ``[n_blocks, block_size]``. Never writes ``blocks``."""
        raise NotImplementedError(f"{cls.__qualname__} does not implement dequantize_blocks")

    @classmethod
    def _n_blocks(cls, blocks: torch.Tensor) -> int:
        """Check that ``blocks`` is uint8 ``[n_blocks, type_size]`` and return ``n_blocks``."""
        if blocks.dtype != torch.uint8 or blocks.dim() != 2 or blocks.shape[1] != cls.type_size:
            raise ValueError(
                f"{cls.name} blocks must be uint8 [n_blocks, {cls.type_size}], "
                f"got {blocks.dtype} {list(blocks.shape)}"
            )
        return blocks.shape[0]


def registered_formats() -> dict[int, type[QuantFormat]]:
    """A copy of the registry: ggml type id -> format class."""
    return dict(_REGISTRY)


def get_format(ggml_type: int) -> type[QuantFormat]:
    """The format class for a ggml type id; ``UnsupportedModel`` when camelid cannot read that type."""
    fmt = _REGISTRY.get(int(ggml_type))
    if fmt is None:
        raise UnsupportedModel(f"tensor type {_type_label(ggml_type)} is not supported")
    return fmt


def row_bytes(ggml_type: int, n_cols: int) -> int:
    """Bytes taken by one row of ``n_cols`` elements (a whole number of blocks) of the given type."""
    fmt = get_format(ggml_type)
    if n_cols < 0 or n_cols % fmt.block_size != 0:
        raise UnsupportedModel(
            f"tensor rows of {n_cols} elements are not a multiple of the {fmt.name} block size {fmt.block_size}"
        )
    return n_cols // fmt.block_size * fmt.type_size


def dequantize(data: torch.Tensor, ggml_type: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Decode the raw bytes of a ggml tensor into a new float32 tensor of ``shape``.

    ``data``: uint8, 1-D or ``[rows, row_bytes]`` (any shape holding exactly the tensor's bytes, in
    order). ``shape``: torch order, i.e. ggml's ``ne`` reversed; the last dimension is the row length.
    ``data`` is only read (it may be a non-writable view over a memmap); the result never aliases it.
    """
    fmt = get_format(ggml_type)
    shape = tuple(int(s) for s in shape)
    n_cols = shape[-1] if shape else 1
    n_rows = math.prod(shape[:-1])
    n_bytes = n_rows * row_bytes(ggml_type, n_cols)
    if data.dtype != torch.uint8:
        raise TypeError(f"dequantize expects the raw bytes as a uint8 tensor, got {data.dtype}")
    if data.numel() != n_bytes:
        raise ValueError(
            f"{fmt.name} tensor of shape {list(shape)} takes {n_bytes} bytes, but {data.numel()} were given"
        )
    n_blocks = n_bytes // fmt.type_size
    blocks = data.reshape(n_blocks, fmt.type_size)  # [n_blocks, type_size], a view when data is contiguous
    out = torch.empty((n_blocks, fmt.block_size), dtype=torch.float32)  # [n_blocks, block_size]
    step = max(1, _CHUNK_ELEMENTS // fmt.block_size)
    for start in range(0, n_blocks, step):
        out[start : start + step] = fmt.dequantize_blocks(blocks[start : start + step])
    return out.reshape(shape)


def quantize_reference(values: np.ndarray, ggml_type: int) -> np.ndarray:
    """Quantize with gguf's numpy reference (``gguf.quants.quantize``); returns the raw bytes (uint8).

    The last axis of ``values`` must be a multiple of the block size; the result has the same leading
    axes and ``row_bytes`` bytes per row. Meant for tests. gguf raises ``NotImplementedError`` for the
    types it cannot quantize (at gguf 0.19: the K-quants among ours).
    """
    import gguf.quants

    qtype = GGMLQuantizationType(int(ggml_type))
    out = gguf.quants.quantize(np.asarray(values, dtype=np.float32), qtype)
    return np.ascontiguousarray(out).view(np.uint8)


# ---- bit-unpacking helpers shared by the formats ---------------------------------------------------


def contiguous_bytes(blocks: torch.Tensor) -> torch.Tensor:
    """A fresh, contiguous copy of ``blocks`` (aligned storage, so it can be viewed as a wider dtype)."""
    return blocks.clone(memory_format=torch.contiguous_format)


def f16_at(blocks: torch.Tensor, offset: int) -> torch.Tensor:
    """The little-endian float16 at byte ``offset`` of every block, as float32: ``[n, T]`` -> ``[n, 1]``."""
    return contiguous_bytes(blocks[:, offset : offset + 2]).view(torch.float16).float()


def _shifts(width: int) -> torch.Tensor:
    return torch.arange(0, 8, width, dtype=torch.uint8)  # [8 // width]: 0, width, 2*width, ...


def bit_planes(x: torch.Tensor, width: int) -> torch.Tensor:
    """Split each byte into ``8 // width`` fields, planes first: uint8 ``[..., k]`` -> ``[..., 8 // width, k]``.

    ``out[..., p, i] = (x[..., i] >> (p * width)) & (2**width - 1)`` -- e.g. ``width=4`` puts all low
    nibbles (plane 0) before all high nibbles (plane 1), the order ggml uses for ``qs`` arrays.
    """
    return (x.unsqueeze(-2) >> _shifts(width).view(-1, 1)) & ((1 << width) - 1)


def bit_fields(x: torch.Tensor, width: int) -> torch.Tensor:
    """Split each byte into ``8 // width`` fields, in place order: uint8 ``[..., k]`` -> ``[..., k, 8 // width]``.

    ``out[..., i, p] = (x[..., i] >> (p * width)) & (2**width - 1)`` -- e.g. ``width=1`` over 4 bytes gives
    the 32 bits of a little-endian uint32, lowest bit first.
    """
    return (x.unsqueeze(-1) >> _shifts(width)) & ((1 << width) - 1)
