"""A Llama-shaped decoder run entirely by the native kernels from numpy buffers: no torch import.

`camelid run MODEL PROMPT` in a fresh process spends most of its start importing torch (about 1 s here, more than
llama-cpp-python's whole start). Every layer of such a model is one native block already (camelid_blocks_forward),
so this path drives the same C functions — embedding rows, RoPE tables, the layers, the final norm and the output
matmul — over numpy arrays and ctypes pointers, with a float16 KV cache like the torch model's. Same kernels, same
order: its logits are bit-identical to the torch model's (tests/models/test_native_model.py).

Two architectures are covered: `llama` (models/llama.py) and `gemma3` (models/gemma3.py: embeddings scaled by
sqrtf(n_embd), QK and sandwich norms, GELU, queries scaled first, sliding-window layers with their own RoPE). Each
layer's spec carries what the torch block's `_build_native_spec` puts in it, so the C code does the same work.
`NativeModel.create` answers None for anything it does not cover (another architecture, a weight format without a
native kernel, biases, logit softcapping, no native library): the caller then loads the torch model.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from camelid.gguf.reader import GGUFFile, TensorInfo
from camelid.kernels.library import NATIVE_TYPES, BlockSpec, library
from camelid.models.config import (
    GEMMA3_LOCAL_ROPE_BASE,
    ModelConfig,
    gemma3_local_layers,
    gemma3_query_scale_dim,
)

F32, F16, Q8_0 = 0, 1, 8
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
NORM_SLOTS = {"attn_norm": "attn_norm", "attn_q_norm": "q_norm", "attn_k_norm": "k_norm",  # tensor -> BlockSpec
              "post_attention_norm": "post_attn_norm", "ffn_norm": "ffn_norm", "post_ffw_norm": "post_ffw_norm"}


@dataclass(frozen=True)
class Architecture:
    """What the torch model of one GGUF architecture does that this path must do the same way."""

    norms: tuple[str, ...]  # the per-layer RMSNorm tensors (F32); a file with another one of NORM_SLOTS is refused
    neox: bool  # RoPE on halves (LLAMA_ROPE_TYPE_NEOX) instead of adjacent pairs
    gemma3: bool = False  # scaled embeddings, GELU, queries scaled first, sliding-window layers (models/gemma3.py)
    rope_freqs: bool = False  # reads the optional `rope_freqs` frequency divisors (llama 3.1+)


ARCHITECTURES = {
    "llama": Architecture(norms=("attn_norm", "ffn_norm"), neox=False, rope_freqs=True),
    "gemma3": Architecture(norms=tuple(NORM_SLOTS), neox=True, gemma3=True),
}


def _ptr(array: np.ndarray) -> int:
    return array.ctypes.data


def _inverse_sqrt(n: int) -> float:
    """1.0f / sqrtf(n), as llama.cpp rounds its attention scale."""
    return float(np.float32(1.0) / np.sqrt(np.float32(n)))


class NativeModel:
    """Weights (views of the file's memory map), per-layer native specs and one KV cache slot of n_ctx."""

    def __init__(self, lib: ctypes.CDLL, gguf: GGUFFile, config: ModelConfig, n_ctx: int,
                 arch: Architecture) -> None:
        self.lib, self.gguf, self.config, self.n_ctx, self.arch = lib, gguf, config, n_ctx, arch
        tensors = gguf.tensors
        self.embedding = tensors["token_embd.weight"]
        self.output = tensors.get("output.weight") or self.embedding  # tied embeddings share the bytes
        self.output_norm = self._f32(tensors["output_norm.weight"])
        factors = tensors.get("rope_freqs.weight") if arch.rope_freqs else None
        self.freq_factors = self._f32(factors) if factors is not None else None
        # gemma3: x * sqrtf(n_embd); local layers attend within the window with their own unscaled RoPE
        self.embed_scale = np.sqrt(np.float32(config.n_embd)) if arch.gemma3 else None
        self.local = gemma3_local_layers(config) if arch.gemma3 else [False] * config.n_layers
        self.local_rope_base = float(config.extras.get("rope.freq_base_swa", GEMMA3_LOCAL_ROPE_BASE))
        shape = (1, config.n_head_kv, n_ctx)
        self.keys = [np.zeros((*shape, config.head_dim_k), np.float16) for _ in range(config.n_layers)]
        self.values = [np.zeros((*shape, config.head_dim_v), np.float16) for _ in range(config.n_layers)]
        self.specs = [self._spec(i) for i in range(config.n_layers)]
        self.spec_pointers = (ctypes.c_void_p * len(self.specs))(*(ctypes.addressof(s) for s in self.specs))
        self.output_args = ((ctypes.c_void_p * 1)(_ptr(self.output.data)), (ctypes.c_int * 1)(self.output.ggml_type),
                            (ctypes.c_int64 * 1)(self.output.shape[0]))
        self.scratch = np.empty(0, np.uint8)

    @classmethod
    def create(cls, gguf: GGUFFile, n_ctx: int) -> NativeModel | None:
        """The native model of this file, or None when this path does not cover it."""
        name = gguf.get("general.architecture", "")
        arch = ARCHITECTURES.get(name) if isinstance(name, str) else None  # anything else: the torch loader's error
        lib = library()
        if arch is None or lib is None:
            return None
        tensors = gguf.tensors
        embedding = tensors.get("token_embd.weight")
        if embedding is None or embedding.ggml_type not in (F32, F16, Q8_0):
            return None
        config = ModelConfig.from_metadata(gguf.metadata, default_vocab_size=embedding.shape[0])
        if config.rope_scaling_type not in ("none", "linear", "yarn") or config.n_layers <= 0:
            return None
        if arch.gemma3 and (len(gemma3_local_layers(config)) != config.n_layers
                            or (config.final_logit_softcapping and config.sliding_window is None)):
            return None  # a short layer pattern; softcapped logits (torch's tanh, not computed here)
        output = tensors.get("output.weight") or embedding
        layers = range(config.n_layers)
        wanted = [f"blk.{i}.{name}.weight" for i in layers for name in PROJECTIONS]
        norms = ["output_norm.weight", *(f"blk.{i}.{name}.weight" for i in layers for name in arch.norms)]
        if (any(tensors.get(name) is None or tensors[name].ggml_type not in NATIVE_TYPES for name in wanted)
                or output.ggml_type not in NATIVE_TYPES
                or any(tensors.get(name) is None or tensors[name].ggml_type != F32 for name in norms)
                or any(name.endswith(".bias") for name in tensors)
                or any(f"blk.0.{name}.weight" in tensors for name in NORM_SLOTS if name not in arch.norms)):
            return None
        return cls(lib, gguf, config, min(n_ctx, config.context_length or n_ctx), arch)

    @staticmethod
    def _f32(info: TensorInfo) -> np.ndarray:
        return info.data.view(np.float32)

    def _spec(self, index: int) -> BlockSpec:
        """What the torch block's _build_native_spec and native_spec set for this layer."""
        c, tensors, gemma3 = self.config, self.gguf.tensors, self.arch.gemma3
        head_dim = gemma3_query_scale_dim(c) if gemma3 else c.head_dim_k
        window = c.sliding_window if self.local[index] else None
        spec = BlockSpec(n_embd=c.n_embd, n_head=c.n_head, n_head_kv=c.n_head_kv, head_dim_k=c.head_dim_k,
                         head_dim_v=c.head_dim_v, n_ff=c.n_ff, n_rot=c.rope_dim, n_ctx=self.n_ctx,
                         window=window or 0, eps=c.rms_eps, scale=_inverse_sqrt(head_dim),
                         scale_queries_first=int(gemma3), neox=int(self.arch.neox), gelu=int(gemma3))
        for name, slot in NORM_SLOTS.items():
            norm = tensors[f"blk.{index}.{name}.weight"] if name in self.arch.norms else None
            setattr(spec, slot, _ptr(self._f32(norm)) if norm is not None else None)
        for i, name in enumerate(PROJECTIONS):
            info = tensors[f"blk.{index}.{name}.weight"]
            spec.weights[i], spec.types[i] = _ptr(info.data), info.ggml_type
        spec.k_cache, spec.v_cache = _ptr(self.keys[index]), _ptr(self.values[index])
        return spec

    def _scratch(self, n_bytes: int) -> np.ndarray:
        if self.scratch.size < n_bytes:
            self.scratch = np.empty(n_bytes, np.uint8)
        return self.scratch

    def embed(self, ids: list[int]) -> np.ndarray:
        """float32 [T, n_embd] rows of the embedding table (Q8_0: d × q, rounded once, as ggml dequantizes)."""
        info = self.embedding
        rows = info.data.reshape(info.shape[0], -1)[np.asarray(ids, dtype=np.int64)]
        if info.ggml_type == F32:
            return rows.view(np.float32).copy()
        if info.ggml_type == F16:
            return rows.view(np.float16).astype(np.float32)
        blocks = rows.reshape(len(ids), -1, 34)
        scales = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)  # [T, nb, 1]
        return (blocks[:, :, 2:].view(np.int8).astype(np.float32) * scales).reshape(len(ids), -1)

    def embed_scaled(self, ids: list[int]) -> np.ndarray:
        """The rows the first layer takes: gemma3 multiplies them by sqrtf(n_embd) in float32, as its torch model."""
        x = self.embed(ids)
        if self.embed_scale is not None:
            x *= self.embed_scale
        return x

    def rope(self, positions: np.ndarray, *, local: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """cos, sin [T, n_rot/2] as ggml computes them (the native routine the torch model calls too); local: the
        gemma3 sliding-window layers' table (base rope.freq_base_swa, no scaling: RotaryEmbedding scaled=False)."""
        c = self.config
        half = c.rope_dim // 2
        cos, sin = np.empty((positions.size, half), np.float32), np.empty((positions.size, half), np.float32)
        base, freq_scale, attn_factor = ((self.local_rope_base, 1.0, 1.0) if local
                                         else (c.rope_freq_base, c.rope_freq_scale, c.rope_attn_factor))
        yarn = not local and c.rope_scaling_type == "yarn"
        self.lib.camelid_rope_tables(
            _ptr(positions), positions.size, c.rope_dim, base, freq_scale,
            _ptr(self.freq_factors) if self.freq_factors is not None else None, 1.0 if yarn else 0.0, attn_factor,
            c.rope_original_context or c.context_length, c.rope_yarn_beta_fast, c.rope_yarn_beta_slow,
            _ptr(cos), _ptr(sin))
        return cos, sin

    def forward(self, ids: list[int], start: int) -> np.ndarray:
        """Run `ids` at positions start.. (in the cache) and return the last one's logits [vocab] float32."""
        lib, c = self.lib, self.config
        n = len(ids)
        x = self.embed_scaled(ids)
        positions = np.arange(start, start + n, dtype=np.int64)
        slots = np.zeros(1, np.int64)
        tables = {local: self.rope(positions, local=local) for local in set(self.local)}  # by layer kind
        cos_array = (ctypes.c_void_p * len(self.specs))(*(_ptr(tables[local][0]) for local in self.local))
        sin_array = (ctypes.c_void_p * len(self.specs))(*(_ptr(tables[local][1]) for local in self.local))
        scratch = self._scratch(max(lib.camelid_block_scratch(ctypes.byref(s), n) for s in self.specs))
        if lib.camelid_blocks_forward(self.spec_pointers, len(self.specs), _ptr(x), 1, n, _ptr(positions),
                                      _ptr(slots), cos_array, sin_array, _ptr(scratch)):
            raise RuntimeError("native block refused its weights")  # excluded by create()
        last = np.ascontiguousarray(x[-1:])
        normed = np.empty_like(last)
        lib.camelid_rmsnorm(_ptr(last), _ptr(self.output_norm), _ptr(normed), 1, c.n_embd, c.rms_eps)
        n_vocab = self.output.shape[0]
        logits = np.empty((1, n_vocab), np.float32)
        scratch = self._scratch(lib.camelid_matmul_scratch(1, c.n_embd))
        pointers, types, n_outs = self.output_args
        if lib.camelid_matmul(_ptr(normed), 1, c.n_embd, 1, pointers, types, n_outs, _ptr(logits), n_vocab,
                              _ptr(scratch)):
            raise RuntimeError("native matmul refused the output weight")
        return logits[0]

    def describe(self) -> dict[str, Any]:
        return {"architecture": self.config.architecture, "n_ctx": self.n_ctx, "layers": len(self.specs)}
