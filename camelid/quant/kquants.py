"""K-quants: super-blocks of 256 elements (``QK_K``) split into sub-blocks with their own scales.

Byte layouts follow ggml (``ggml-common.h``) and the numpy reference in ``gguf/quants.py``; ``f16`` is a
little-endian IEEE half. The order of the float operations copies the reference exactly
(``(d * sc) * q - (dmin * m)``), so results are bit-identical to ``gguf.quants.dequantize``.
"""

from __future__ import annotations

import torch
from gguf import GGMLQuantizationType

from camelid.quant.base import QuantFormat, bit_planes, f16_at

QK_K = 256


def _k_scales_mins(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpack the 12-byte, 6-bit scales and mins of Q4_K / Q5_K: ``[n, 12]`` -> two uint8 ``[n, 8]``.

    Bytes (scale ``j`` = ``S_j``, min ``j`` = ``M_j``; capitals are the high 2 bits of entries 4..7)::

        0..3   S4hi S0 (2+6 bits)       -> sc[j]   = b[j] & 63                      (j < 4)
        4..7   M4hi M0                  -> min[j]  = b[4 + j] & 63
        8..11  M4lo S4lo (4+4 bits)     -> sc[4+j] = (b[8+j] & 15) | ((b[j] >> 2) & 0x30)
                                           min[4+j] = (b[8+j] >> 4) | ((b[4+j] >> 2) & 0x30)
    """
    s = packed.reshape(-1, 3, 4)  # [n, 3, 4]
    d, m, md = s[:, 0], s[:, 1], s[:, 2]  # each [n, 4]
    sc = torch.cat([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], dim=-1)  # [n, 8]
    mn = torch.cat([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], dim=-1)  # [n, 8]
    return sc, mn


class Q2_K(QuantFormat):
    """256 elements, 84 bytes: ``scales: u8[16] | qs: u8[64] | d: f16 | dmin: f16``.

    16 sub-blocks of 16; ``scales[j]`` holds the 4-bit scale (low) and 4-bit min (high) of sub-block ``j``.
    ``qs`` is two halves of 32 bytes; each half holds 4 planes of 2-bit values (shift 0, 2, 4, 6), each
    plane being 32 consecutive elements (2 sub-blocks). ``x = (d * sc) * q - (dmin * m)``.
    """

    ggml_type = GGMLQuantizationType.Q2_K
    block_size = QK_K
    type_size = 84

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        scales = blocks[:, 0:16]  # [n, 16]
        d = f16_at(blocks, 80)  # [n, 1]
        dmin = f16_at(blocks, 82)  # [n, 1]
        dl = (d * (scales & 0x0F).float()).reshape(n, 16, 1)  # [n, 16, 1]
        ml = (dmin * (scales >> 4).float()).reshape(n, 16, 1)  # [n, 16, 1]
        q = bit_planes(blocks[:, 16:80].reshape(n, 2, 32), 2)  # [n, 2, 4, 32]
        q = q.reshape(n, 16, 16).float()  # [n, sub-block, 16]
        return (dl * q - ml).reshape(n, QK_K)


class Q3_K(QuantFormat):
    """256 elements, 110 bytes: ``hmask: u8[32] | qs: u8[64] | scales: u8[12] | d: f16``.

    16 sub-blocks of 16 with signed 6-bit scales: low 4 bits from the nibbles of ``scales[0:8]`` (all low
    nibbles, then all high), high 2 bits from the 2-bit planes of ``scales[8:12]``; minus 32.
    Low 2 bits of the values as in Q2_K's ``qs``; the 3rd bit is plane ``k`` (bit ``k``) of ``hmask`` for
    elements ``32k .. 32k+31``, and a CLEAR bit means subtract 4. ``x = (d * (scale - 32)) * q``.
    """

    ggml_type = GGMLQuantizationType.Q3_K
    block_size = QK_K
    type_size = 110

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        d = f16_at(blocks, 108)  # [n, 1]
        lsc = bit_planes(blocks[:, 96:104], 4).reshape(n, 16)  # [n, 2, 8] -> [n, 16]
        hsc = bit_planes(blocks[:, 104:108], 2).reshape(n, 16)  # [n, 4, 4] -> [n, 16]
        sc = ((lsc | (hsc << 4)).to(torch.int8) - 32).float()  # [n, 16], -32..31
        dl = (d * sc).reshape(n, 16, 1)  # [n, 16, 1]

        ql = bit_planes(blocks[:, 32:96].reshape(n, 2, 32), 2)  # [n, 2, 4, 32]
        qh = bit_planes(blocks[:, 0:32], 1)  # [n, 8, 32]
        ql, qh = ql.reshape(n, 16, 16), qh.reshape(n, 16, 16)  # [n, sub-block, 16]
        q = (ql.to(torch.int8) - ((qh ^ 1) << 2).to(torch.int8)).float()  # -4..3
        return (dl * q).reshape(n, QK_K)


def _sub_block_scales_mins(blocks: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K header ``d: f16 | dmin: f16 | scales: u8[12]`` -> per sub-block d * sc and dmin * m, [n, 8, 1]."""
    d = f16_at(blocks, 0)  # [n, 1]
    dmin = f16_at(blocks, 2)  # [n, 1]
    sc, mn = _k_scales_mins(blocks[:, 4:16])  # [n, 8] each
    return (d * sc.float()).reshape(n, 8, 1), (dmin * mn.float()).reshape(n, 8, 1)


class Q4_K(QuantFormat):
    """256 elements, 144 bytes: ``d: f16 | dmin: f16 | scales: u8[12] | qs: u8[128]``.

    8 sub-blocks of 32 with 6-bit scales and mins (see ``_k_scales_mins``). ``qs`` is four chunks of
    32 bytes; chunk ``c`` holds sub-block ``2c`` in its low nibbles and ``2c + 1`` in its high nibbles.
    ``x = (d * sc) * q - (dmin * m)``.
    """

    ggml_type = GGMLQuantizationType.Q4_K
    block_size = QK_K
    type_size = 144

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        dl, ml = _sub_block_scales_mins(blocks, n)  # [n, 8, 1] each
        q = bit_planes(blocks[:, 16:144].reshape(n, 4, 32), 4).reshape(n, 8, 32).float()  # [n, 8, 32]
        return (dl * q - ml).reshape(n, QK_K)


class Q5_K(QuantFormat):
    """256 elements, 176 bytes: ``d: f16 | dmin: f16 | scales: u8[12] | qh: u8[32] | qs: u8[128]``.

    As Q4_K, plus a 5th bit per element: bit ``j`` of ``qh[i]`` for element ``i`` of sub-block ``j``.
    ``x = (d * sc) * q - (dmin * m)``.
    """

    ggml_type = GGMLQuantizationType.Q5_K
    block_size = QK_K
    type_size = 176

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        dl, ml = _sub_block_scales_mins(blocks, n)  # [n, 8, 1] each
        qh = bit_planes(blocks[:, 16:48], 1)  # [n, 8, 32]
        ql = bit_planes(blocks[:, 48:176].reshape(n, 4, 32), 4).reshape(n, 8, 32)  # [n, 8, 32]
        q = (ql | (qh << 4)).float()  # 0..31
        return (dl * q - ml).reshape(n, QK_K)


class Q6_K(QuantFormat):
    """256 elements, 210 bytes: ``ql: u8[128] | qh: u8[64] | scales: i8[16] | d: f16``.

    16 sub-blocks of 16 with signed 8-bit scales. Two halves of 128 elements; in half ``h``, ``ql[64h:64h+64]``
    gives the low nibbles (low nibbles = elements 0..63, high nibbles = 64..127) and
    ``qh[32h:32h+32]`` the high 2 bits (plane ``k`` = elements ``32k .. 32k+31``). ``x = (d * sc) * (q - 32)``.
    """

    ggml_type = GGMLQuantizationType.Q6_K
    block_size = QK_K
    type_size = 210

    @classmethod
    def dequantize_blocks(cls, blocks: torch.Tensor) -> torch.Tensor:
        n = cls._n_blocks(blocks)
        sc = blocks[:, 192:208].view(torch.int8).float()  # [n, 16]
        d = f16_at(blocks, 208)  # [n, 1]
        dl = (d * sc).reshape(n, 16, 1)  # [n, 16, 1]
        ql = bit_planes(blocks[:, 0:128].reshape(n, 2, 64), 4)  # [n, 2, 2, 64]
        qh = bit_planes(blocks[:, 128:192].reshape(n, 2, 32), 2)  # [n, 2, 4, 32]
        ql, qh = ql.reshape(n, 8, 32), qh.reshape(n, 8, 32)  # both: 256 elements in order
        q = ((ql | (qh << 4)).to(torch.int8) - 32).reshape(n, 16, 16).float()  # -32..31
        return (dl * q).reshape(n, QK_K)
