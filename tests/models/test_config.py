"""ModelConfig.from_metadata and the architecture registry."""

from __future__ import annotations

import pytest

from camelid.errors import BadModelFile, UnsupportedModel
from camelid.models import ModelConfig, get_architecture, register, supported_architectures
from camelid.models.gemma3 import local_layers


def metadata(**extra: object) -> dict:
    base = {"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 64,
            "llama.feed_forward_length": 96, "llama.attention.head_count": 4, "llama.context_length": 256,
            "llama.attention.layer_norm_rms_epsilon": 1e-5, "tokenizer.ggml.tokens": ["a", "b", "c"]}
    return {**base, **extra}


def test_defaults_follow_llama_cpp() -> None:
    config = ModelConfig.from_metadata(metadata())
    assert (config.n_head_kv, config.head_dim_k, config.head_dim_v, config.rope_dim) == (4, 16, 16, 16)
    assert config.vocab_size == 3 and config.rope_freq_base == 10000.0 and config.sliding_window is None
    assert config.rope_scaling_type == "none" and config.rope_freq_scale == 1.0


def test_explicit_keys_win() -> None:
    config = ModelConfig.from_metadata(metadata(**{
        "llama.vocab_size": 7, "llama.attention.head_count_kv": [2, 2], "llama.attention.key_length": 32,
        "llama.attention.value_length": 24, "llama.rope.dimension_count": 8, "llama.rope.freq_base": 5e5,
        "llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4.0,
        "llama.attention.sliding_window": 4096, "llama.some_future_key": 1}))
    assert (config.vocab_size, config.n_head_kv, config.head_dim_k, config.head_dim_v) == (7, 2, 32, 24)
    assert config.rope_dim == 8 and config.rope_freq_base == 5e5 and config.rope_freq_scale == 0.25
    assert config.sliding_window == 4096 and config.extras["some_future_key"] == 1


def test_missing_required_key_is_named() -> None:
    broken = metadata()
    del broken["llama.attention.layer_norm_rms_epsilon"]
    with pytest.raises(BadModelFile, match=r"'llama\.attention\.layer_norm_rms_epsilon'"):
        ModelConfig.from_metadata(broken)


def test_vocab_size_falls_back_to_the_embedding_rows() -> None:
    bare = metadata()
    del bare["tokenizer.ggml.tokens"]
    with pytest.raises(BadModelFile, match="vocab_size"):
        ModelConfig.from_metadata(bare)
    assert ModelConfig.from_metadata(bare, default_vocab_size=11).vocab_size == 11


def test_varying_per_layer_values_are_unsupported() -> None:
    with pytest.raises(UnsupportedModel, match="head_count_kv"):
        ModelConfig.from_metadata(metadata(**{"llama.attention.head_count_kv": [4, 2]}))


def test_unknown_rope_scaling_is_unsupported() -> None:
    with pytest.raises(UnsupportedModel, match="rope scaling type 'magic'"):
        ModelConfig.from_metadata(metadata(**{"llama.rope.scaling.type": "magic"}))


def test_gemma3_layer_pattern() -> None:
    gemma = {k.replace("llama.", "gemma3."): v for k, v in metadata().items()} | {
        "general.architecture": "gemma3", "gemma3.block_count": 12, "gemma3.attention.sliding_window": 512}
    config = ModelConfig.from_metadata(gemma)
    assert [i for i, local in enumerate(local_layers(config)) if not local] == [5, 11]
    config = ModelConfig.from_metadata(gemma | {"gemma3.attention.sliding_window_pattern": 3})
    assert [i for i, local in enumerate(local_layers(config)) if not local] == [2, 5, 8, 11]
    del gemma["gemma3.attention.sliding_window"]
    assert not any(local_layers(ModelConfig.from_metadata(gemma)))


def test_registry() -> None:
    assert {"llama", "gemma3", "qwen2", "qwen3", "phi3"} <= set(supported_architectures())
    assert get_architecture("llama").__name__ == "LlamaModel"
    with pytest.raises(UnsupportedModel, match=r"'rwkv9' is not supported \(supported: gemma3, "):
        get_architecture("rwkv9")
    with pytest.raises(ValueError, match="registered twice"):
        register("llama")(type("Other", (), {}))
