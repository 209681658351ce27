"""Gemma 3 text models (GGUF `gemma3`).

Differences from Llama, as llama.cpp implements them: embeddings scaled by sqrt(n_embd); per-head QK
RMSNorm; an RMSNorm after the attention and after the MLP (sandwich norms); GELU(tanh)-gated MLP;
interleaved local (sliding-window, RoPE base 10000 unscaled) and global (full, RoPE base `rope.freq_base`
with the file's scaling) layers, every 6th layer global; query scale 1/sqrt(key_length) (for the 62-layer
27B: 1/sqrt(n_embd/n_head)). The GGUF converter already added Gemma's +1 to every norm weight, so norms
use the weights as stored.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from camelid.models.base import DecoderModel
from camelid.models.config import GEMMA3_LOCAL_ROPE_BASE, ModelConfig, gemma3_query_scale_dim
from camelid.models.config import gemma3_local_layers as local_layers
from camelid.models.layers import DecoderBlock, ForwardContext, RMSNorm, RotaryEmbedding, geglu
from camelid.models.layers import float32_inverse_sqrt as inverse_sqrt
from camelid.models.registry import register


class Gemma3Block(DecoderBlock):
    """h = x + post_attention_norm(attn(attn_norm(x))); h + post_ffw_norm(mlp(ffn_norm(h)))."""

    gelu = True

    def __init__(self, config: ModelConfig, layer_index: int, *, local: bool, query_scale: float) -> None:
        super().__init__(config, layer_index, rope_name="local" if local else "global",
                         window=config.sliding_window if local else None, query_scale=query_scale,
                         scale_queries_first=True)
        e, hk, hv = config.n_embd, config.head_dim_k, config.head_dim_v
        self.attn_norm = RMSNorm(e, config.rms_eps)
        self.attn_q = nn.Linear(e, config.n_head * hk, bias=False)
        self.attn_k = nn.Linear(e, config.n_head_kv * hk, bias=False)
        self.attn_v = nn.Linear(e, config.n_head_kv * hv, bias=False)
        self.attn_q_norm = RMSNorm(hk, config.rms_eps)
        self.attn_k_norm = RMSNorm(hk, config.rms_eps)
        self.attn_output = nn.Linear(config.n_head * hv, e, bias=False)
        self.post_attention_norm = RMSNorm(e, config.rms_eps)
        self.ffn_norm = RMSNorm(e, config.rms_eps)
        self.ffn_gate = nn.Linear(e, config.n_ff, bias=False)
        self.ffn_up = nn.Linear(e, config.n_ff, bias=False)
        self.ffn_down = nn.Linear(config.n_ff, e, bias=False)
        self.post_ffw_norm = RMSNorm(e, config.rms_eps)

    def forward(self, x: torch.Tensor, context: ForwardContext) -> torch.Tensor:  # [B, T, n_embd]
        native_out = self.native_forward(x, context)
        if native_out is not None:
            return native_out
        h = x + self.post_attention_norm(self.self_attention(self.attn_norm(x), context))
        return h + self.post_ffw_norm(self.gated_mlp(self.ffn_norm(h), geglu))


@register("gemma3")
class Gemma3Model(DecoderModel):
    rope_neox = True

    def build_rotary(self, config: ModelConfig) -> dict[str, RotaryEmbedding]:
        local_base = float(config.extras.get("rope.freq_base_swa", GEMMA3_LOCAL_ROPE_BASE))
        return {"global": RotaryEmbedding.from_config(config, neox=True),
                "local": RotaryEmbedding.from_config(config, neox=True, base=local_base, scaled=False)}

    def build_block(self, config: ModelConfig, layer_index: int) -> DecoderBlock:
        query_scale = inverse_sqrt(gemma3_query_scale_dim(config))
        local = local_layers(config)[layer_index]
        return Gemma3Block(config, layer_index, local=local, query_scale=query_scale)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, T, n_embd]
        return self.token_embd(tokens) * float(np.sqrt(np.float32(self.config.n_embd)))  # sqrtf(n_embd)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, T, n_embd] -> [B, T, vocab]
        logits = self.output(hidden).float()
        softcap = self.config.final_logit_softcapping
        if softcap and self.config.sliding_window is None:  # llama.cpp caps only in its non-SWA gemma3 graph
            logits = torch.tanh(logits / softcap) * softcap
        return logits
