"""Native kernels in plain C (camelid/kernels/csrc), called through ctypes.

They reproduce ggml's CPU arithmetic operation for operation, so their results are bit-identical to llama.cpp's
(measured on llama.cpp's own intermediate tensors): the Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K matmuls, attention over the
fp16 KV cache, RMSNorm, RoPE, SwiGLU, GEGLU, and whole transformer layers made of them. The package build compiles
them (setup.py, an optional extension); failing that they are compiled with the system C compiler into camelid's
data folder the first time they are needed. Without a compiler or without AVX2/FMA/F16C, or with
`CAMELID_NATIVE=0`, the torch reference paths are used.
"""

from __future__ import annotations

import ctypes

import torch

from camelid.kernels import numerics
from camelid.kernels.library import NATIVE_TYPES, BlockSpec, library, set_threads
from camelid.kernels.reference import reference_matmul

__all__ = ["NATIVE_TYPES", "BlockSpec", "FusedWeights", "NativeLayers", "active", "library", "set_threads"]


def active() -> ctypes.CDLL | None:
    """The library when ggml's numerics are wanted and it can run here, else None."""
    return library() if numerics.GGML_NUMERICS else None


def _ptr_of(t: torch.Tensor) -> int:
    return t.data_ptr()



class FusedWeights:
    """The argument arrays of one native matmul over several weights that read the same input, built once."""

    def __init__(self, weights: list[torch.Tensor], types: list[int], n_outs: list[int], n_in: int) -> None:
        self.keep = weights  # the arrays hold raw pointers: keep the tensors alive
        self.count, self.n_in, self.total = len(weights), n_in, sum(n_outs)
        self.pointers = (ctypes.c_void_p * len(weights))(*(w.data_ptr() for w in weights))
        self.types = (ctypes.c_int * len(weights))(*types)
        self.n_outs = (ctypes.c_int64 * len(weights))(*n_outs)


def matmul_fused(x: torch.Tensor, fused: FusedWeights) -> torch.Tensor | None:
    """x [..., n_in] against every weight of `fused`: [..., sum of n_out], the outputs side by side; None when the
    native path is not available (or not for these types)."""
    lib = active()
    if lib is None:
        return None
    rows = x.reshape(-1, fused.n_in)
    if rows.dtype != torch.float32 or not rows.is_contiguous():
        rows = rows.to(torch.float32).contiguous()
    n_tokens = rows.shape[0]
    out = torch.empty(n_tokens, fused.total, dtype=torch.float32)
    scratch = _scratch(lib.camelid_matmul_scratch(n_tokens, fused.n_in))
    status = lib.camelid_matmul(rows.data_ptr(), n_tokens, fused.n_in, fused.count, fused.pointers, fused.types,
                                fused.n_outs, out.data_ptr(), fused.total, scratch.data_ptr())
    if status != 0:
        return None
    return out.view(*x.shape[:-1], fused.total)


_scratch_buffer = torch.empty(0, dtype=torch.uint8)


def _scratch(n_bytes: int) -> torch.Tensor:
    """A byte buffer of at least n_bytes, reused across calls (calls never overlap: one forward at a time)."""
    global _scratch_buffer
    if _scratch_buffer.numel() < n_bytes:
        _scratch_buffer = torch.empty(n_bytes, dtype=torch.uint8)
    return _scratch_buffer


def matmul_blocks(x: torch.Tensor, weight: torch.Tensor, ggml_type: int, n_out: int, n_in: int) -> torch.Tensor:
    """x [..., n_in] @ W.T for a weight of NATIVE_TYPES, bit-exact with llama.cpp; else the reference path."""
    out = matmul_fused(x, FusedWeights([weight], [int(ggml_type)], [n_out], n_in)) if active() else None
    return out if out is not None else reference_matmul(x, weight, ggml_type, n_out, n_in)


def _glu(kernel_name: str, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor | None:
    lib = active()
    if lib is None or gate.dtype != torch.float32 or up.dtype != torch.float32:
        return None
    gate, up = gate.contiguous(), up.contiguous()
    out = torch.empty_like(gate)
    n = gate.shape[-1]
    getattr(lib, kernel_name)(_ptr_of(gate), _ptr_of(up), _ptr_of(out), gate.numel() // n, n)
    return out


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor | None:
    """silu(gate) * up as ggml_vec_swiglu_f32 computes it, or None when the native path is not available."""
    return _glu("camelid_swiglu", gate, up)


def geglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor | None:
    """gelu_tanh(gate) * up as ggml_vec_geglu_f32 computes it (its fp16 table), or None without the native path."""
    return _glu("camelid_geglu", gate, up)


def attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, slots: torch.Tensor,
              positions: torch.Tensor, n_keys: int, window: int | None, scale: float,
              k_new: torch.Tensor | None = None, v_new: torch.Tensor | None = None) -> torch.Tensor | None:
    """llama.cpp's attention over an fp16 cache, or None when the native path is not available.

    q [B, T, H, Dk] (roped), keys/values the whole cache of one layer [n_slots, Hkv, n_ctx, D] fp16,
    slots [B], positions [B, T] (-1 = padding). k_new/v_new [B, T, Hkv, D], when given, are first stored in the
    cache at their positions. Returns [B, T, H, Dv] float32.
    """
    lib = active()
    if lib is None or keys.dtype != torch.float16 or values.dtype != torch.float16:
        return None
    batch, n_tokens, n_head, head_dim_k = q.shape
    n_kv_heads, n_ctx, head_dim_v = keys.shape[1], keys.shape[2], values.shape[3]
    q = q.to(torch.float32).contiguous()
    slots = slots.to(torch.int64).contiguous()
    positions = positions.to(torch.int64).contiguous()
    out = torch.empty(batch, n_tokens, n_head, head_dim_v, dtype=torch.float32)
    if k_new is not None and v_new is not None:
        k_new, v_new = k_new.to(torch.float32).contiguous(), v_new.to(torch.float32).contiguous()
    lib.camelid_attention_f16(_ptr_of(q), _ptr_of(keys), _ptr_of(values), _ptr_of(slots), _ptr_of(positions),
                              batch, n_tokens, n_head, n_kv_heads, head_dim_k, head_dim_v, n_ctx, n_keys,
                              window or 0, scale, int(n_tokens > 1), _ptr_of(out),
                              _ptr_of(k_new) if k_new is not None else None,
                              _ptr_of(v_new) if v_new is not None else None)
    return out


def rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor | None:
    """ggml's RMSNorm of the last dimension times weight, or None without the native path."""
    lib = active()
    if lib is None or x.dtype != torch.float32:
        return None
    x = x.contiguous()
    out = torch.empty_like(x)
    n = x.shape[-1]
    lib.camelid_rmsnorm(_ptr_of(x), _ptr_of(weight) if weight is not None else None, _ptr_of(out),
                        x.numel() // n, n, eps)
    return out


def rope_apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, neox: bool) -> torch.Tensor | None:
    """x [B, T, H, D] rotated over its first 2 * cos.shape[-1] dims (cos/sin [B, T, n_rot/2]) as ggml rotates,
    or None without the native path."""
    lib = active()
    if lib is None or x.dtype != torch.float32:
        return None
    out = x.contiguous().clone() if x.is_contiguous() else x.contiguous()
    batch, n_tokens, n_head, head_dim = x.shape
    cos, sin = cos.contiguous(), sin.contiguous()
    lib.camelid_rope_apply(_ptr_of(out), _ptr_of(cos), _ptr_of(sin), batch * n_tokens, n_head, head_dim,
                           2 * cos.shape[-1], int(neox))
    return out


def rope_tables(positions: torch.Tensor, n_rot: int, base: float, freq_scale: float,
                factors: torch.Tensor | None, yarn: bool, attn_factor: float, original_context: int,
                beta_fast: float, beta_slow: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """cos, sin [*positions.shape, n_rot/2] as ggml_rope_cache_init computes them (the C library's powf, cosf,
    sinf), or None without the native path."""
    lib = active()
    if lib is None:
        return None
    flat = positions.reshape(-1).to(torch.int64).contiguous()
    half = n_rot // 2
    cos = torch.empty(flat.numel(), half, dtype=torch.float32)
    sin = torch.empty_like(cos)
    factor_data = factors.to(torch.float32).contiguous() if factors is not None else None
    lib.camelid_rope_tables(_ptr_of(flat), flat.numel(), n_rot, base, freq_scale,
                            _ptr_of(factor_data) if factor_data is not None else None, 1.0 if yarn else 0.0,
                            attn_factor, original_context, beta_fast, beta_slow, _ptr_of(cos), _ptr_of(sin))
    return cos.view(*positions.shape, half), sin.view(*positions.shape, half)


class NativeLayers:
    """Every layer of a model as BlockSpecs bound to one KV cache, with the argument arrays built once: a forward
    pass is then one native call with almost no Python work (camelid_blocks_forward)."""

    def __init__(self, specs: list[BlockSpec], rope_names: list[str]) -> None:
        self.specs, self.rope_names, self.n = specs, rope_names, len(specs)
        self.pointers = (ctypes.c_void_p * self.n)(*(ctypes.addressof(spec) for spec in specs))
        self.scratch_bytes: dict[int, int] = {}

    def forward(self, x: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor,
                tables: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """x [B, T, n_embd] through every layer; tables maps a RoPE name to its (cos, sin) [B, T, n_rot/2]."""
        lib = library()
        assert lib is not None
        out = x.to(torch.float32).contiguous().clone()
        batch, n_tokens = positions.shape
        rows = batch * n_tokens
        if rows not in self.scratch_bytes:
            self.scratch_bytes[rows] = max(lib.camelid_block_scratch(ctypes.byref(spec), rows) for spec in self.specs)
        scratch = _scratch(self.scratch_bytes[rows])
        positions = positions.to(torch.int64).contiguous()
        slots = slots.to(torch.int64).contiguous()
        pointers = {name: (cos.contiguous().data_ptr(), sin.contiguous().data_ptr()) for name, (cos, sin) in tables.items()}
        cos_array = (ctypes.c_void_p * self.n)(*(pointers[name][0] for name in self.rope_names))
        sin_array = (ctypes.c_void_p * self.n)(*(pointers[name][1] for name in self.rope_names))
        if lib.camelid_blocks_forward(self.pointers, self.n, out.data_ptr(), batch, n_tokens, positions.data_ptr(),
                                      slots.data_ptr(), cos_array, sin_array, scratch.data_ptr()):
            raise RuntimeError("native block refused its weights")  # excluded when the specs were built
        return out


def register() -> None:
    """Install the native kernels in the kernel table (they fall back by themselves where they cannot run)."""
    from camelid.kernels.table import register_matmul

    for ggml_type in NATIVE_TYPES:
        register_matmul(ggml_type, matmul_blocks)
