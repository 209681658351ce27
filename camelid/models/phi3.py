"""Phi-3 / Phi-3.5 / Phi-4 (GGUF `phi3`).

Llama wiring with fused projections: `attn_qkv` rows are [q (n_head*hd) | k (n_head_kv*hd) | v (n_head_kv*hd)]
and `ffn_up` rows are [gate (n_ff) | up (n_ff)] (llama.cpp's SWIGLU on the fused tensor: silu(first half) *
second half). RoPE rotates halves; the 128k models carry longrope factors (`rope_factors_short/long`):
the long ones apply when a sequence may exceed the original context, as in llama.cpp. llama.cpp ignores
Phi's sliding window (it is disabled there), so camelid does too.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from camelid.models.base import DecoderModel
from camelid.models.config import ModelConfig
from camelid.models.layers import DecoderBlock, ForwardContext, RMSNorm, swiglu
from camelid.models.registry import register


class Phi3Block(DecoderBlock):
    """x + attn(attn_norm(x)), then h + mlp(ffn_norm(h)), with fused QKV and fused gate/up projections."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config, layer_index)
        e = config.n_embd
        self.q_width = config.n_head * config.head_dim_k
        self.k_width = config.n_head_kv * config.head_dim_k
        self.v_width = config.n_head_kv * config.head_dim_v
        self.attn_norm = RMSNorm(e, config.rms_eps)
        self.attn_qkv = nn.Linear(e, self.q_width + self.k_width + self.v_width, bias=False)
        self.attn_output = nn.Linear(config.n_head * config.head_dim_v, e, bias=False)
        self.ffn_norm = RMSNorm(e, config.rms_eps)
        self.ffn_up = nn.Linear(e, 2 * config.n_ff, bias=False)  # [gate | up]
        self.ffn_down = nn.Linear(config.n_ff, e, bias=False)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        qkv = self.attn_qkv(x)  # [B, T, q_width + k_width + v_width]
        q, k, v = qkv.split((self.q_width, self.k_width, self.v_width), dim=-1)
        return q, k, v

    def fused_gated_mlp(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, n_embd] -> [B, T, n_embd]
        gate, up = self.ffn_up(x).chunk(2, dim=-1)  # each [B, T, n_ff]
        return self.ffn_down(swiglu(gate, up))

    def forward(self, x: torch.Tensor, context: ForwardContext) -> torch.Tensor:  # [B, T, n_embd]
        h = x + self.self_attention(self.attn_norm(x), context)
        return h + self.fused_gated_mlp(self.ffn_norm(h))


@register("phi3")
class Phi3Model(DecoderModel):
    rope_neox = True
    optional_tensors: ClassVar[dict[str, str]] = {
        "rope_factors_short.weight": "rotary.default.short_factors",
        "rope_factors_long.weight": "rotary.default.long_factors"}

    def build_block(self, config: ModelConfig, layer_index: int) -> DecoderBlock:
        return Phi3Block(config, layer_index)
