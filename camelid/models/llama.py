"""Llama family (GGUF `llama`): Llama 2/3, SmolLM, Mistral 7B and other Llama-shaped checkpoints.

llama.cpp rotates adjacent pairs (LLAMA_ROPE_TYPE_NORM): its converter permutes the Q/K rows of HF checkpoints
so that this matches HF's rotate-half. Llama 3.1+ frequency scaling arrives as the `rope_freqs` tensor.
Optional biases on the projections (some fine-tunes) are attached by the loader when the file has them.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from camelid.models.base import DecoderModel
from camelid.models.config import ModelConfig
from camelid.models.layers import DecoderBlock, ForwardContext, RMSNorm
from camelid.models.registry import register


class LlamaBlock(DecoderBlock):
    """x + attn(attn_norm(x)), then h + mlp(ffn_norm(h)) with a SiLU-gated MLP."""

    def __init__(self, config: ModelConfig, layer_index: int, *, qkv_bias: bool = False,
                 qk_norm: bool = False) -> None:
        super().__init__(config, layer_index)
        q_width, kv_width = config.n_head * config.head_dim_k, config.n_head_kv * config.head_dim_k
        self.attn_norm = RMSNorm(config.n_embd, config.rms_eps)
        self.attn_q = nn.Linear(config.n_embd, q_width, bias=qkv_bias)
        self.attn_k = nn.Linear(config.n_embd, kv_width, bias=qkv_bias)
        self.attn_v = nn.Linear(config.n_embd, config.n_head_kv * config.head_dim_v, bias=qkv_bias)
        if qk_norm:
            self.attn_q_norm = RMSNorm(config.head_dim_k, config.rms_eps)
            self.attn_k_norm = RMSNorm(config.head_dim_k, config.rms_eps)
        self.attn_output = nn.Linear(config.n_head * config.head_dim_v, config.n_embd, bias=False)
        self.ffn_norm = RMSNorm(config.n_embd, config.rms_eps)
        self.ffn_gate = nn.Linear(config.n_embd, config.n_ff, bias=False)
        self.ffn_up = nn.Linear(config.n_embd, config.n_ff, bias=False)
        self.ffn_down = nn.Linear(config.n_ff, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor, context: ForwardContext) -> torch.Tensor:  # [B, T, n_embd]
        native_out = self.native_forward(x, context)
        if native_out is not None:
            return native_out
        h = x + self.self_attention(self.attn_norm(x), context)
        return h + self.gated_mlp(self.ffn_norm(h))


@register("llama")
class LlamaModel(DecoderModel):
    rope_neox = False  # LLAMA_ROPE_TYPE_NORM
    optional_tensors: ClassVar[dict[str, str]] = {"rope_freqs.weight": "rotary.default.freq_factors"}

    def build_block(self, config: ModelConfig, layer_index: int) -> DecoderBlock:
        return LlamaBlock(config, layer_index)
