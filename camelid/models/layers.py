"""Building blocks shared by the architectures: RMSNorm, rotary position embedding, masked grouped-query
attention over the KV cache, and gated MLPs.

Module attribute names mirror GGUF tensor names (`attn_q`, `ffn_up`, ...) so the loader can assign every
tensor by name; that is why a block holds its projections directly instead of in `Attention`/`MLP`
submodules, and the shared logic lives in `DecoderBlock` methods. No quantization and no I/O here: every
projection is a plain `nn.Linear` that the loader replaces.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from camelid.kernels import native
from camelid.kernels.activations import geglu, gelu_tanh, swiglu  # noqa: F401  (re-exported for the models)
from camelid.kernels.attention import attend, attention_mask, grouped_attention  # noqa: F401
from camelid.kernels.layers import QuantLinear, apply_linears
from camelid.kernels.native import rmsnorm, rope_apply, rope_tables
from camelid.models.config import ModelConfig

if TYPE_CHECKING:
    from camelid.engine.kv_cache import KVCache


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight, over the last dimension, rounded as ggml rounds it: the squares
    (float32) summed in sequence in float64, the mean rounded to float32, scale = 1 / sqrt(mean + eps) in float32
    (bit-exact with llama.cpp's output; torch's pairwise float32 mean differs in ~20 % of rows)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., dim] -> [..., dim]
        out = rmsnorm(x, self.weight, self.eps)
        if out is not None:
            return out
        squares = (x * x).double()
        mean = (torch.cumsum(squares, dim=-1)[..., -1:] / x.shape[-1]).to(x.dtype)  # sequential sum, as ggml's loop
        # sqrtf through float64 (exactly rounded; torch's float32 sqrt is not always), then a float32 division
        scale = 1.0 / torch.sqrt((mean + self.eps).double()).to(x.dtype)
        return x * scale * self.weight

    def extra_repr(self) -> str:
        return f"dim={self.weight.shape[0]}, eps={self.eps}"


# --- rotary position embedding --------------------------------------------------------------------------

def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a * b + c rounded once, as the fused multiply-add the compiler emits for ggml's rotation."""
    return (a.double() * b.double() + c.double()).to(a.dtype)


@dataclass(frozen=True)
class RopeTables:
    """cos/sin of every rotation angle for one batch of positions, and how to pair the rotated dimensions."""

    cos: torch.Tensor  # [B, T, n_rot / 2]
    sin: torch.Tensor  # [B, T, n_rot / 2]
    neox: bool  # True: dims (i, i + n_rot/2) rotate together (NEOX); False: dims (2i, 2i+1) (llama.cpp NORM)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate the first n_rot dims of every head. x [B, T, n_heads, head_dim] -> same shape."""
        out = rope_apply(x, self.cos, self.sin, self.neox)
        if out is not None:
            return out
        half = self.cos.shape[-1]
        cos, sin = self.cos[:, :, None, :], self.sin[:, :, None, :]  # [B, T, 1, n_rot/2]
        rotated, passed = x[..., :2 * half], x[..., 2 * half:]
        if self.neox:
            x1, x2 = rotated[..., :half], rotated[..., half:]
            out = torch.cat((_fma(x1, cos, -(x2 * sin)), _fma(x1, sin, x2 * cos)), dim=-1)
        else:
            x1, x2 = rotated[..., 0::2], rotated[..., 1::2]
            out = torch.stack((_fma(x1, cos, -(x2 * sin)), _fma(x1, sin, x2 * cos)), dim=-1).flatten(-2)
        return torch.cat((out, passed), dim=-1) if passed.shape[-1] else out


class RotaryEmbedding(nn.Module):
    """RoPE angles as llama.cpp's ggml_rope_ext computes them.

    theta_i = position * base^(-2i / n_rot) / factor_i, with optional linear scaling (freq_scale), YaRN, per-
    dimension frequency factors (llama3's `rope_freqs`, phi3's longrope short/long factors) and a magnitude
    scale on cos/sin (attn_factor). Factor buffers are None until the loader assigns them from the file.
    """

    def __init__(self, n_rot: int, base: float, *, neox: bool, freq_scale: float = 1.0,
                 attn_factor: float = 1.0, yarn: bool = False, original_context: int = 0,
                 beta_fast: float = 32.0, beta_slow: float = 1.0) -> None:
        super().__init__()
        if n_rot <= 0 or n_rot % 2:
            raise ValueError(f"rope dimension count must be positive and even, got {n_rot}")
        self.n_rot, self.base, self.neox = n_rot, base, neox
        self.freq_scale, self.attn_factor, self.yarn = freq_scale, attn_factor, yarn
        self.original_context, self.beta_fast, self.beta_slow = original_context, beta_fast, beta_slow
        self.register_buffer("freq_factors", None, persistent=False)  # [n_rot/2] divisors (llama3 rope_freqs)
        self.register_buffer("short_factors", None, persistent=False)  # [n_rot/2] phi3 longrope, short
        self.register_buffer("long_factors", None, persistent=False)  # [n_rot/2] phi3 longrope, long

    @classmethod
    def from_config(cls, config: ModelConfig, *, neox: bool, base: float | None = None,
                    scaled: bool = True) -> RotaryEmbedding:
        """The model-wide RoPE; `base`/`scaled=False` give a variant (e.g. gemma3's local layers)."""
        return cls(config.rope_dim, config.rope_freq_base if base is None else base, neox=neox,
                   freq_scale=config.rope_freq_scale if scaled else 1.0,
                   attn_factor=config.rope_attn_factor if scaled else 1.0,
                   yarn=scaled and config.rope_scaling_type == "yarn",
                   original_context=config.rope_original_context or config.context_length,
                   beta_fast=config.rope_yarn_beta_fast, beta_slow=config.rope_yarn_beta_slow)

    def factors(self, n_ctx: int) -> torch.Tensor | None:
        """The frequency divisors in effect when a sequence may hold n_ctx tokens (llama.cpp's choice)."""
        if self.freq_factors is not None:
            return self.freq_factors
        if self.long_factors is not None and n_ctx > self.original_context:
            return self.long_factors
        return self.short_factors

    def tables(self, positions: torch.Tensor, n_ctx: int) -> RopeTables:
        """cos/sin for positions [B, T] when each sequence may hold n_ctx tokens.

        The angles are built as ggml builds them, in float32: theta_0 = position, theta_{i+1} = theta_i * s with
        s = base^(-2/n_rot) — a running product whose rounding differs from position * base^(-2i/n_rot). The native
        kernel then takes the C library's cosf/sinf, as ggml does: bit-exact with llama.cpp's rotated q/k. The torch
        fallback rounds float64 cos/sin once (bit-exact for ~99.4 % of elements; the direct formula ~85 %).
        """
        factors = self.factors(n_ctx)
        native_tables = rope_tables(positions, self.n_rot, self.base, self.freq_scale, factors, self.yarn,
                                    self.attn_factor, self.original_context, self.beta_fast, self.beta_slow)
        if native_tables is not None:
            return RopeTables(*native_tables, self.neox)
        half = self.n_rot // 2
        scale = torch.tensor(self.base, dtype=torch.float32) ** (-2.0 / self.n_rot)
        theta_extrap = torch.empty(*positions.shape, half, dtype=torch.float32)  # [B, T, half]
        current = positions.to(torch.float32)
        for i in range(half):  # sequential float32 products, as ggml's loop (torch.cumprod rounds differently)
            theta_extrap[..., i] = current
            current = current * scale
        if factors is not None:
            theta_extrap = theta_extrap / factors.to(torch.float32)
        theta = theta_extrap * self.freq_scale
        magnitude = self.attn_factor
        if self.yarn and self.freq_scale != 1.0:
            low, high = self._yarn_correction_dims()
            ramp = torch.arange(half, dtype=torch.float32, device=positions.device)
            ramp = 1 - ((ramp - low) / max(0.001, high - low)).clamp(0, 1)  # 1 = keep extrapolated angle
            theta = theta * (1 - ramp) + theta_extrap * ramp
            magnitude *= 1 + 0.1 * math.log(1 / self.freq_scale)
        cos = theta.double().cos().to(torch.float32) * magnitude  # cosf: the float64 value rounded once
        sin = theta.double().sin().to(torch.float32) * magnitude
        return RopeTables(cos, sin, self.neox)

    def _yarn_correction_dims(self) -> tuple[float, float]:
        """Dimension range over which YaRN blends interpolated and extrapolated angles (ggml's corr_dims)."""
        def dim_for(n_rotations: float) -> float:
            return (self.n_rot * math.log(self.original_context / (n_rotations * 2 * math.pi))
                    / (2 * math.log(self.base)))
        low = max(0.0, math.floor(dim_for(self.beta_fast)))
        high = min(self.n_rot - 1.0, math.ceil(dim_for(self.beta_slow)))
        return low, high

    def extra_repr(self) -> str:
        style = "neox" if self.neox else "norm"
        return f"n_rot={self.n_rot}, base={self.base}, {style}, freq_scale={self.freq_scale}"


# --- attention ----------------------------------------------------------------------------------------------

@dataclass
class ForwardContext:
    """What every layer of one forward pass shares: where the tokens go, their masks and rotations."""

    positions: torch.Tensor  # [B, T] int64; PADDING_POSITION (-1) marks padding
    slots: torch.Tensor  # [B] int64 cache slot of each sequence
    cache: KVCache
    rope: dict[str, RopeTables]  # by rotary name ("default", "global", "local", ...)
    masks: dict[int | None, torch.Tensor] = field(default_factory=dict)  # by sliding window, made on demand

    def mask(self, window: int | None) -> torch.Tensor:
        """bool [B, 1, T, L] visibility for the torch attention path (None = full causal), built once per pass."""
        if window not in self.masks:
            self.masks[window] = attention_mask(self.positions, int(self.positions.max()) + 1, window)
        return self.masks[window]


def float32_inverse_sqrt(n: float) -> float:
    """1.0f / sqrtf(n), rounded as llama.cpp rounds its attention scales."""
    return float(np.float32(1.0) / np.sqrt(np.float32(n)))


class DecoderBlock(nn.Module):
    """One transformer layer. Subclasses declare the GGUF-named modules and the residual wiring (`forward`);
    this class holds the attention and MLP computations they share."""

    def __init__(self, config: ModelConfig, layer_index: int, *, rope_name: str = "default",
                 window: int | None = None, query_scale: float | None = None,
                 scale_queries_first: bool = False) -> None:
        super().__init__()
        self.layer_index = layer_index
        self.n_head, self.n_head_kv = config.n_head, config.n_head_kv
        self.head_dim_k, self.head_dim_v = config.head_dim_k, config.head_dim_v
        self.rope_name, self.window = rope_name, window
        self.query_scale = query_scale if query_scale is not None else float32_inverse_sqrt(config.head_dim_k)
        # True: q * query_scale before attention, softmax scale 1 (gemma3 in llama.cpp); False: the softmax scales
        self.scale_queries_first = scale_queries_first

    gelu: bool = False  # the gated MLP's activation: GELU (tanh) instead of SiLU

    def native_spec(self, context: ForwardContext) -> native.BlockSpec | None:
        """This layer's description for the native whole-layer kernel, ready for this forward pass, or None when
        this block or this run cannot take it: a projection without a native format or with a bias, a cache not
        in fp16, float32 numerics."""
        spec = self.__dict__.get("_native_spec", False)
        if spec is False:
            spec = self.__dict__["_native_spec"] = self._build_native_spec()
        if spec is None or not native.active() or context.cache.dtype != torch.float16:
            return None
        rope = context.rope[self.rope_name]
        keys, values = context.cache.keys[self.layer_index], context.cache.values[self.layer_index]
        spec.n_rot, spec.neox = 2 * rope.cos.shape[-1], int(rope.neox)
        spec.k_cache, spec.v_cache, spec.n_ctx = keys.data_ptr(), values.data_ptr(), keys.shape[2]
        return spec

    def native_forward(self, x: torch.Tensor, context: ForwardContext) -> torch.Tensor | None:
        """The whole layer in one native call (identical results), or None (see native_spec)."""
        spec = self.native_spec(context)
        if spec is None:
            return None
        rope = context.rope[self.rope_name]
        return native.NativeLayers([spec], [self.rope_name]).forward(x, context.positions, context.slots,
                                                                      {self.rope_name: (rope.cos, rope.sin)})

    def _build_native_spec(self) -> native.BlockSpec | None:
        names = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
        modules = [getattr(self, name, None) for name in names]
        if not all(isinstance(m, QuantLinear) and m.bias is None and m.ggml_type in native.NATIVE_TYPES
                   for m in modules):
            return None
        spec = native.BlockSpec(
            n_embd=self.attn_norm.weight.shape[0], n_head=self.n_head, n_head_kv=self.n_head_kv,
            head_dim_k=self.head_dim_k, head_dim_v=self.head_dim_v, n_ff=self.ffn_gate.out_features,
            window=self.window or 0, eps=self.attn_norm.eps, scale=self.query_scale,
            scale_queries_first=int(self.scale_queries_first), neox=0, gelu=int(self.gelu))
        for slot, name in (("attn_norm", "attn_norm"), ("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm"),
                            ("post_attn_norm", "post_attention_norm"), ("ffn_norm", "ffn_norm"),
                            ("post_ffw_norm", "post_ffw_norm")):
            norm = getattr(self, name, None)
            setattr(spec, slot, norm.weight.data_ptr() if norm is not None else None)
        for i, module in enumerate(modules):
            spec.weights[i], spec.types[i] = module.weight.data_ptr(), int(module.ggml_type)
        self.__dict__["_native_keep"] = modules  # the spec holds raw pointers into these
        return spec

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, n_embd] -> q [B, T, H*Dk], k [B, T, Hkv*Dk], v [B, T, Hkv*Dv]."""
        q, k, v = apply_linears(x, [self.attn_q, self.attn_k, self.attn_v])
        return q, k, v

    def self_attention(self, x: torch.Tensor, context: ForwardContext) -> torch.Tensor:
        """Attention sublayer without norms or residual: x [B, T, n_embd] -> [B, T, n_embd]."""
        batch, n_tokens, _ = x.shape
        q, k, v = self.project_qkv(x)
        q = q.view(batch, n_tokens, self.n_head, self.head_dim_k)
        k = k.view(batch, n_tokens, self.n_head_kv, self.head_dim_k)
        v = v.view(batch, n_tokens, self.n_head_kv, self.head_dim_v)
        if hasattr(self, "attn_q_norm"):  # QK-norm over each head, before RoPE
            q, k = self.attn_q_norm(q), self.attn_k_norm(k)
        rope = context.rope[self.rope_name]
        q, k = rope.apply(q), rope.apply(k)
        scale = self.query_scale
        if self.scale_queries_first:
            q, scale = q * scale, 1.0
        out = attend(q, k, v, context.cache, self.layer_index, context.slots, context.positions, self.window,
                     scale, context.mask)  # [B, T, H, Dv]
        return self.attn_output(out.reshape(batch, n_tokens, self.n_head * self.head_dim_v))

    def gated_mlp(self, x: torch.Tensor,
                  glu: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = swiglu) -> torch.Tensor:
        """ffn_down(glu(ffn_gate(x), ffn_up(x))), glu(g, u) = activation(g) * u: [B, T, n_embd] -> [B, T, n_embd]."""
        gate, up = apply_linears(x, [self.ffn_gate, self.ffn_up])
        return self.ffn_down(glu(gate, up))

    def extra_repr(self) -> str:
        return f"layer={self.layer_index}, rope={self.rope_name}, window={self.window}"
