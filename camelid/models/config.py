"""`ModelConfig`: the hyperparameters of a decoder-only transformer, read from GGUF `{arch}.*` metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from camelid.errors import BadModelFile, UnsupportedModel

ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters shared by every architecture; arch-only ones are in `extras` (raw `{arch}.*` keys)."""

    architecture: str  # GGUF general.architecture, e.g. "llama"
    n_layers: int  # block_count
    n_embd: int  # embedding_length: width of the residual stream
    n_ff: int  # feed_forward_length: hidden width of the MLP
    n_head: int  # attention.head_count
    n_head_kv: int  # attention.head_count_kv (grouped-query attention when < n_head)
    head_dim_k: int  # attention.key_length, default n_embd / n_head
    head_dim_v: int  # attention.value_length, default n_embd / n_head
    vocab_size: int
    context_length: int  # training context
    rms_eps: float  # attention.layer_norm_rms_epsilon
    rope_dim: int  # rope.dimension_count: leading dims of each head that are rotated (default head_dim_k)
    rope_freq_base: float = 10000.0  # rope.freq_base
    rope_scaling_type: str = "none"  # rope.scaling.type: none | linear | yarn | longrope
    rope_scaling_factor: float = 1.0  # rope.scaling.factor (context extension; freq_scale = 1 / factor)
    rope_original_context: int = 0  # rope.scaling.original_context_length (0 = context_length)
    rope_attn_factor: float = 1.0  # rope.scaling.attn_factor: multiplies cos and sin (phi3 longrope)
    rope_yarn_beta_fast: float = 32.0  # rope.scaling.yarn_beta_fast
    rope_yarn_beta_slow: float = 1.0  # rope.scaling.yarn_beta_slow
    sliding_window: int | None = None  # attention.sliding_window (None when absent or 0)
    final_logit_softcapping: float | None = None  # final_logit_softcapping
    extras: dict[str, Any] = field(default_factory=dict)  # every `{arch}.*` key, prefix removed

    @property
    def rope_freq_scale(self) -> float:
        """llama.cpp's freq_scale: positions are multiplied by it (linear/yarn context extension)."""
        if self.rope_scaling_type in ("linear", "yarn") and self.rope_scaling_factor > 0:
            return 1.0 / self.rope_scaling_factor
        return 1.0

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], *, default_vocab_size: int | None = None) -> ModelConfig:
        """Build from GGUF metadata. `default_vocab_size` (e.g. rows of token_embd) is used when neither
        `{arch}.vocab_size` nor `tokenizer.ggml.tokens` is present. Raises BadModelFile on a missing key."""
        arch = metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise BadModelFile("metadata has no general.architecture")
        reader = _ArchKeys(metadata, arch)
        n_embd = reader.integer("embedding_length")
        n_head = reader.integer("attention.head_count")
        if n_head <= 0 or n_embd <= 0:
            raise BadModelFile(f"{arch}: head_count {n_head} and embedding_length {n_embd} must be positive")
        head_dim_k = reader.integer("attention.key_length", n_embd // n_head)
        scaling_type = str(reader.get("rope.scaling.type", "none")).lower()
        if scaling_type not in ROPE_SCALING_TYPES:
            raise UnsupportedModel(f"rope scaling type '{scaling_type}' is not supported "
                                   f"(supported: {', '.join(ROPE_SCALING_TYPES)})")
        scaling_factor = float(reader.get("rope.scaling.factor", 0.0))
        if scaling_factor == 0.0 and "rope.scale_linear" in reader.keys:  # older files
            scaling_factor, scaling_type = float(reader.get("rope.scale_linear")), "linear"
        window = reader.integer("attention.sliding_window", 0)
        softcap = reader.get("final_logit_softcapping")
        return cls(
            architecture=arch,
            n_layers=reader.integer("block_count"),
            n_embd=n_embd,
            n_ff=reader.integer("feed_forward_length"),
            n_head=n_head,
            n_head_kv=reader.integer("attention.head_count_kv", n_head),
            head_dim_k=head_dim_k,
            head_dim_v=reader.integer("attention.value_length", n_embd // n_head),
            vocab_size=_vocab_size(metadata, reader, default_vocab_size),
            context_length=reader.integer("context_length"),
            rms_eps=float(reader.require("attention.layer_norm_rms_epsilon")),
            rope_dim=reader.integer("rope.dimension_count", head_dim_k),
            rope_freq_base=float(reader.get("rope.freq_base", 10000.0)),
            rope_scaling_type=scaling_type,
            rope_scaling_factor=scaling_factor or 1.0,
            rope_original_context=reader.integer("rope.scaling.original_context_length", 0),
            rope_attn_factor=float(reader.get("rope.scaling.attn_factor", 1.0)),
            rope_yarn_beta_fast=float(reader.get("rope.scaling.yarn_beta_fast", 32.0)),
            rope_yarn_beta_slow=float(reader.get("rope.scaling.yarn_beta_slow", 1.0)),
            sliding_window=window if window > 0 else None,
            final_logit_softcapping=float(softcap) if softcap else None,
            extras=reader.keys,
        )


class _ArchKeys:
    """Reads `{arch}.name` keys with clear errors; per-layer arrays must be uniform."""

    def __init__(self, metadata: dict[str, Any], arch: str) -> None:
        self.arch = arch
        prefix = arch + "."
        self.keys = {k[len(prefix):]: v for k, v in metadata.items() if k.startswith(prefix)}

    def get(self, name: str, default: Any = None) -> Any:
        return self.keys.get(name, default)

    def require(self, name: str) -> Any:
        if name not in self.keys:
            raise BadModelFile(f"model metadata is missing the required key '{self.arch}.{name}'")
        return self.keys[name]

    def integer(self, name: str, default: int | None = None) -> int:
        value = self.require(name) if default is None else self.keys.get(name, default)
        if isinstance(value, list):  # per-layer values: camelid supports uniform ones only
            if not value or any(v != value[0] for v in value):
                raise UnsupportedModel(f"'{self.arch}.{name}' varies per layer ({value[:8]}): not supported")
            value = value[0]
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BadModelFile(f"metadata key '{self.arch}.{name}' is not an integer: {value!r}") from None


def _vocab_size(metadata: dict[str, Any], reader: _ArchKeys, default: int | None) -> int:
    if "vocab_size" in reader.keys:
        return reader.integer("vocab_size")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, list) and tokens:
        return len(tokens)
    if default is not None:
        return default
    raise BadModelFile(f"model metadata has neither '{reader.arch}.vocab_size' nor tokenizer.ggml.tokens")


GEMMA3_GLOBAL_EVERY = 6  # llama.cpp set_swa_pattern(6): without a pattern, layer il is global iff il % 6 == 5
GEMMA3_LOCAL_ROPE_BASE = 10000.0  # the local layers' RoPE base without `rope.freq_base_swa` (unscaled)


def gemma3_local_layers(config: ModelConfig) -> list[bool]:
    """Which Gemma-3 layers use the sliding window: `attention.sliding_window_pattern` when the file has it (a
    period, or one bool per layer), else every 6th layer global; none at all without a sliding window. Shared by
    the torch model (models/gemma3.py) and the torch-free one (models/native_model.py)."""
    if config.sliding_window is None:
        return [False] * config.n_layers
    pattern = config.extras.get("attention.sliding_window_pattern", GEMMA3_GLOBAL_EVERY)
    if isinstance(pattern, list):
        return [bool(v) for v in pattern][:config.n_layers]
    period = int(pattern)
    return [period > 0 and index % period < period - 1 for index in range(config.n_layers)]


def gemma3_query_scale_dim(config: ModelConfig) -> int:
    """The n in Gemma-3's query scale 1/sqrtf(n): key_length, or n_embd / n_head for the 62-layer 27B (llama.cpp)."""
    return config.n_embd // config.n_head if config.n_layers == 62 else config.head_dim_k
