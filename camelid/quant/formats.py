"""Float formats (F32, F16, BF16) and the legacy 32-element block quants (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1).

Byte layouts follow ggml (``ggml-common.h``) and the numpy reference in ``gguf/quants.py``; all
multi-byte fields are little-endian, ``f16`` is an IEEE half. The order of the float operations copies
the reference exactly (e.g. ``d * q + m``), so results are bit-identical to ``gguf.quants.dequantize``.
"""

from __future__ import annotations

import torch
from gguf import GGMLQuantizationType

from camelid.quant.base import QuantFormat, bit_fields, bit_planes, contiguous_bytes, f16_at


class F32(QuantFormat):
    """IEEE float32. Block: 1 element in 4 bytes."""

    ggml_type = GGMLQuantizationType.F32
    block_size = 1
    type_size = 4

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        cls._n_blocks(blocks)
        return contiguous_bytes(blocks).view(torch.float32)  # [n, 4] u8 -> [n, 1] f32


class F16(QuantFormat):
    """IEEE float16. Block: 1 element in 2 bytes."""

    ggml_type = GGMLQuantizationType.F16
    block_size = 1
    type_size = 2

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        half = contiguous_bytes(blocks).view(torch.float16)  # [n, 2] u8 -> [n, 1] f16
        return half.reshape(n).float().reshape(n, 1)  # converting 1-D is ~8x faster than [n, 1]


class BF16(QuantFormat):
    """bfloat16: the high 16 bits of a float32. Block: 1 element in 2 bytes."""

    ggml_type = GGMLQuantizationType.BF16
    block_size = 1
    type_size = 2

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        bits = contiguous_bytes(blocks).view(torch.int16).reshape(n).to(torch.int32)  # [n]
        return (bits << 16).view(torch.float32).reshape(n, 1)  # [n, 1] f32, exact (NaN payloads kept)


class Q8_0(QuantFormat):
    """Block of 32, 34 bytes: ``d: f16 | qs: i8[32]``.  ``x[i] = qs[i] * d``."""

    ggml_type = GGMLQuantizationType.Q8_0
    block_size = 32
    type_size = 34

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        cls._n_blocks(blocks)
        d = f16_at(blocks, 0)  # [n, 1]
        q = blocks[:, 2:34].view(torch.int8).float()  # [n, 32]
        return q * d


class Q4_0(QuantFormat):
    """Block of 32, 18 bytes: ``d: f16 | qs: u8[16]``.

    Element ``i < 16`` is the low nibble of ``qs[i]``, element ``16 + i`` its high nibble.
    ``x = d * (nibble - 8)``.
    """

    ggml_type = GGMLQuantizationType.Q4_0
    block_size = 32
    type_size = 18

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        d = f16_at(blocks, 0)  # [n, 1]
        q = bit_planes(blocks[:, 2:18], 4).reshape(n, 32)  # [n, 2, 16] -> [n, 32], values 0..15
        q = q.to(torch.int8) - 8  # -8..7
        return d * q.float()


class Q4_1(QuantFormat):
    """Block of 32, 20 bytes: ``d: f16 | m: f16 | qs: u8[16]`` (nibbles as in Q4_0).

    ``x = d * nibble + m``.
    """

    ggml_type = GGMLQuantizationType.Q4_1
    block_size = 32
    type_size = 20

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        d = f16_at(blocks, 0)  # [n, 1]
        m = f16_at(blocks, 2)  # [n, 1]
        q = bit_planes(blocks[:, 4:20], 4).reshape(n, 32).float()  # [n, 32], values 0..15
        return (d * q) + m


class Q5_0(QuantFormat):
    """Block of 32, 22 bytes: ``d: f16 | qh: u32 | qs: u8[16]``.

    Low 4 bits of element ``i`` as in Q4_0; its 5th bit is bit ``i`` of the little-endian ``qh``.
    ``x = d * (q - 16)``.
    """

    ggml_type = GGMLQuantizationType.Q5_0
    block_size = 32
    type_size = 22

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        d = f16_at(blocks, 0)  # [n, 1]
        qh = bit_fields(blocks[:, 2:6], 1).reshape(n, 32)  # [n, 4, 8] -> [n, 32]: bit i of qh
        ql = bit_planes(blocks[:, 6:22], 4).reshape(n, 32)  # [n, 2, 16] -> [n, 32]
        q = (ql | (qh << 4)).to(torch.int8) - 16  # -16..15
        return d * q.float()


class Q5_1(QuantFormat):
    """Block of 32, 24 bytes: ``d: f16 | m: f16 | qh: u32 | qs: u8[16]`` (5-bit values as in Q5_0).

    ``x = d * q + m``.
    """

    ggml_type = GGMLQuantizationType.Q5_1
    block_size = 32
    type_size = 24

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        d = f16_at(blocks, 0)  # [n, 1]
        m = f16_at(blocks, 2)  # [n, 1]
        qh = bit_fields(blocks[:, 4:8], 1).reshape(n, 32)  # [n, 32]: bit i of qh
        ql = bit_planes(blocks[:, 8:24], 4).reshape(n, 32)  # [n, 32]
        q = (ql | (qh << 4)).float()  # 0..31
        return (d * q) + m
