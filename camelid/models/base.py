"""`DecoderModel`: the embedding → blocks → norm → LM head skeleton every architecture shares, and the forward
contract the engine relies on."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from camelid.kernels import native
from camelid.models.config import ModelConfig
from camelid.models.layers import DecoderBlock, ForwardContext, RMSNorm, RotaryEmbedding

if TYPE_CHECKING:
    from camelid.engine.kv_cache import KVCache


class DecoderModel(nn.Module):
    """A decoder-only transformer whose module names mirror GGUF tensor names (`token_embd`, `blk.N.*`,
    `output_norm`, `output`).

    Subclasses implement `build_block` (and `build_rotary` when they need other than one NORM/NEOX RoPE).
    `optional_tensors` maps GGUF tensors the architecture uses when present to the buffer they fill.
    """

    optional_tensors: ClassVar[dict[str, str]] = {}
    rope_neox: ClassVar[bool] = True  # llama.cpp LLAMA_ROPE_TYPE_NEOX; False = LLAMA_ROPE_TYPE_NORM

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # An explicit (uninitialized) weight skips reset_parameters: on the meta device normal_() would import
        # ~800 torch modules (70 MB) for values the loader replaces anyway.
        self.token_embd = nn.Embedding(config.vocab_size, config.n_embd,
                                       _weight=torch.empty(config.vocab_size, config.n_embd))
        self.rotary = nn.ModuleDict(self.build_rotary(config))
        self.blk = nn.ModuleList(self.build_block(config, index) for index in range(config.n_layers))
        self.output_norm = RMSNorm(config.n_embd, config.rms_eps)
        self.output = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def build_block(self, config: ModelConfig, layer_index: int) -> DecoderBlock:
        raise NotImplementedError

    def build_rotary(self, config: ModelConfig) -> dict[str, RotaryEmbedding]:
        return {"default": RotaryEmbedding.from_config(config, neox=self.rope_neox)}

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, T, n_embd]
        return self.token_embd(tokens)

    def forward_context(self, positions: torch.Tensor, cache: KVCache, slots: torch.Tensor) -> ForwardContext:
        """Masks and RoPE tables computed once per forward pass and shared by all layers."""
        return ForwardContext(
            positions=positions, slots=slots, cache=cache,
            rope={name: rotary.tables(positions, cache.n_ctx) for name, rotary in self.rotary.items()})

    def hidden_states(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache,
                      slots: torch.Tensor) -> torch.Tensor:
        """Final normed hidden states [B, T, n_embd] of tokens [B, T] at positions [B, T] in slots [B]."""
        if tokens.shape != positions.shape or tokens.dim() != 2 or slots.shape != tokens.shape[:1]:
            raise ValueError(f"expected tokens and positions [B, T] and slots [B]; got "
                             f"{tuple(tokens.shape)}, {tuple(positions.shape)}, {tuple(slots.shape)}")
        context = self.forward_context(positions, cache, slots)
        x = self.embed(tokens)  # [B, T, n_embd]
        layers = self.native_layers(context)
        if layers is not None:  # every layer in one native call: the same arithmetic, no per-layer Python
            x = layers.forward(x, positions, slots, {name: (t.cos, t.sin) for name, t in context.rope.items()})
        else:
            for block in self.blk:
                x = block(x, context)
        return self.output_norm(x)

    def native_layers(self, context: ForwardContext) -> native.NativeLayers | None:
        """All layers bound to this pass's cache for the native path, or None when some layer cannot take it.
        Built once per cache (the last one is kept)."""
        if not native.active() or context.cache.dtype != torch.float16:
            return None
        kept = self.__dict__.get("_native_layers")
        if kept is not None and kept[0] is context.cache:
            return kept[1]
        specs = [block.native_spec(context) for block in self.blk]
        layers = None
        if all(spec is not None for spec in specs):
            layers = native.NativeLayers(specs, [block.rope_name for block in self.blk])  # type: ignore[arg-type]
        self.__dict__["_native_layers"] = (context.cache, layers)
        return layers

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, cache: KVCache, slots: torch.Tensor, *,
                all_logits: bool = True) -> torch.Tensor:
        """float32 logits [B, T, vocab], or [B, 1, vocab] for each sequence's last position (its largest
        position, so padding on either side is fine) when all_logits is False."""
        hidden = self.hidden_states(tokens, positions, cache, slots)  # [B, T, n_embd]
        if not all_logits:
            last = positions.argmax(dim=1)  # [B]
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            hidden = hidden[rows, last][:, None]  # [B, 1, n_embd]
        return self.logits(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, T, n_embd] -> [B, T, vocab]
        return self.output(hidden).float()

    def new_cache(self, n_slots: int, n_ctx: int, dtype: torch.dtype = torch.float16) -> KVCache:
        """A KV cache sized for this model: n_slots sequences of up to n_ctx tokens each."""
        from camelid.engine.kv_cache import KVCache  # the engine owns the cache; models only use it

        c = self.config
        return KVCache(c.n_layers, n_slots, n_ctx, c.n_head_kv, c.head_dim_k, c.head_dim_v, dtype=dtype)
