"""Qwen2 / Qwen2.5 (GGUF `qwen2`: biases on Q/K/V) and Qwen3 (GGUF `qwen3`: per-head QK RMSNorm, no biases).

Both rotate halves (LLAMA_ROPE_TYPE_NEOX) and otherwise wire their layers like Llama.
"""

from __future__ import annotations

from camelid.models.base import DecoderModel
from camelid.models.config import ModelConfig
from camelid.models.layers import DecoderBlock
from camelid.models.llama import LlamaBlock
from camelid.models.registry import register


@register("qwen2")
class Qwen2Model(DecoderModel):
    rope_neox = True

    def build_block(self, config: ModelConfig, layer_index: int) -> DecoderBlock:
        return LlamaBlock(config, layer_index, qkv_bias=True)


@register("qwen3")
class Qwen3Model(DecoderModel):
    rope_neox = True

    def build_block(self, config: ModelConfig, layer_index: int) -> DecoderBlock:
        return LlamaBlock(config, layer_index, qk_norm=True)
