"""Tiny random models written twice: as a HF `transformers` model and as an F32 GGUF converted the way
llama.cpp's convert_hf_to_gguf.py does (names mapped, llama Q/K rows permuted, Gemma norms +1, Phi-3's fused
tensors kept as they are).

Fixtures: `reference(name)` builds (once per session) the HF model, its GGUF and HF's logits for 32 tokens;
`write_tiny_gguf(name, path, ...)` writes a variant (tensors dropped, another architecture, Q8_0 weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import torch
import transformers

from camelid.kernels.numerics import float32_numerics

N_TOKENS = 32
COMMON = {"vocab_size": 160, "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
          "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "bos_token_id": 1,
          "eos_token_id": 2, "pad_token_id": 0}


@pytest.fixture(autouse=True)
def plain_float32_numerics() -> Any:
    """The references are float32 HF models: no ggml activation quantization, no fp16 GELU table."""
    with float32_numerics():
        yield


@dataclass(frozen=True)
class TinySpec:
    """One test model: its HF config/class and how convert_hf_to_gguf.py would write it."""

    gguf_arch: str
    hf_class: str
    config: Callable[[], Any]
    permute_qk: bool = False  # llama: rows permuted for llama.cpp's adjacent-pair RoPE
    norm_shift: float = 0.0  # gemma: HF stores w for (1 + w)
    vocab_in_tokens: bool = False  # write tokenizer.ggml.tokens instead of {arch}.vocab_size
    extra_metadata: Callable[[gguf.GGUFWriter, Any], None] | None = None


def _llama3_rope_freqs(cfg: Any) -> np.ndarray:
    """convert_hf_to_gguf.py's `rope_freqs` for rope_type llama3: one divisor per rotated pair."""
    rope = cfg.rope_parameters
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    old_context = rope["original_max_position_embeddings"]
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    factors = []
    for freq in freqs:
        wavelength = 2 * math.pi / freq
        if wavelength < old_context / high:
            factors.append(1.0)
        elif wavelength > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def _gemma3_metadata(writer: gguf.GGUFWriter, cfg: Any) -> None:
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)
    writer.add_sliding_window(cfg.sliding_window)
    writer.add_rope_freq_base(cfg.rope_parameters["full_attention"]["rope_theta"])
    writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    writer.add_rope_scaling_factor(cfg.rope_parameters["full_attention"]["factor"])


def _qwen3_metadata(writer: gguf.GGUFWriter, cfg: Any) -> None:
    writer.add_key_length(cfg.head_dim)
    writer.add_value_length(cfg.head_dim)


def _phi3_metadata(writer: gguf.GGUFWriter, cfg: Any) -> None:
    rope = cfg.rope_parameters
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    writer.add_rope_dimension_count(int(head_dim * rope.get("partial_rotary_factor", 1.0)))
    original = rope.get("original_max_position_embeddings", cfg.original_max_position_embeddings)
    writer.add_rope_scaling_orig_ctx_len(original)
    writer.add_sliding_window(0)
    if rope.get("rope_type") == "longrope":
        scale = cfg.max_position_embeddings / original
        writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)))


def _llama_config(**extra: Any) -> Any:
    return transformers.LlamaConfig(**COMMON, num_hidden_layers=2, **extra)


LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
PHI3_LONGROPE = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                 "original_max_position_embeddings": 16, "short_factor": [1.0, 1.5, 2.0, 3.0],
                 "long_factor": [1.5, 2.5, 4.0, 8.0]}


def _gemma3_config() -> Any:
    linear_rope = {"rope_type": "linear", "factor": 2.0}  # global layers only, as in gemma3 4B+
    return transformers.Gemma3TextConfig(**COMMON, num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16,
                                         sliding_window=8, rope_scaling=linear_rope)


def _qwen2_config() -> Any:
    return transformers.Qwen2Config(**COMMON, num_hidden_layers=2, rope_theta=1e6, tie_word_embeddings=True)


def _qwen3_config() -> Any:
    return transformers.Qwen3Config(**COMMON, num_hidden_layers=2, head_dim=32, rope_theta=1e6,
                                    tie_word_embeddings=False)


def _phi3_longrope_config() -> Any:
    return transformers.Phi3Config(**{**COMMON, "max_position_embeddings": 64}, num_hidden_layers=2,
                                   original_max_position_embeddings=16, rope_parameters=PHI3_LONGROPE)


SPECS: dict[str, TinySpec] = {
    "llama": TinySpec("llama", "LlamaForCausalLM", permute_qk=True,
                      config=lambda: _llama_config(rope_theta=5000.0, tie_word_embeddings=False)),
    "llama3_rope": TinySpec("llama", "LlamaForCausalLM", permute_qk=True,
                            config=lambda: _llama_config(tie_word_embeddings=True,
                                                         rope_parameters=LLAMA3_ROPE)),
    "gemma3": TinySpec("gemma3", "Gemma3ForCausalLM", norm_shift=1.0, vocab_in_tokens=True,
                       extra_metadata=_gemma3_metadata, config=_gemma3_config),
    "qwen2": TinySpec("qwen2", "Qwen2ForCausalLM", vocab_in_tokens=True, config=_qwen2_config),
    "qwen3": TinySpec("qwen3", "Qwen3ForCausalLM", vocab_in_tokens=True, extra_metadata=_qwen3_metadata,
                      config=_qwen3_config),
    "phi3": TinySpec("phi3", "Phi3ForCausalLM", extra_metadata=_phi3_metadata,
                     config=lambda: transformers.Phi3Config(**COMMON, num_hidden_layers=2)),
    "phi3_longrope": TinySpec("phi3", "Phi3ForCausalLM", extra_metadata=_phi3_metadata,
                              config=_phi3_longrope_config),
}

_LAYER_NAMES = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.qkv_proj": "attn_qkv",
    "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "mlp.gate_up_proj": "ffn_up",
}
_GEMMA_LAYER_NAMES = {**_LAYER_NAMES, "post_attention_layernorm": "post_attention_norm",
                      "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm"}
_TOP_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}


def _permute(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """convert_hf_to_gguf.py's LlamaModel.permute: rotate-half layout -> adjacent-pair layout, per head."""
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def gguf_tensors(spec: TinySpec, model: Any) -> dict[str, np.ndarray]:
    """HF state dict -> GGUF-named float32 arrays, as the converter writes them."""
    cfg = model.config
    names = _GEMMA_LAYER_NAMES if spec.gguf_arch == "gemma3" else _LAYER_NAMES
    out: dict[str, np.ndarray] = {}
    for hf_name, tensor in model.state_dict().items():
        stem, _, kind = hf_name.rpartition(".")
        if stem == "lm_head" and cfg.tie_word_embeddings:
            continue
        if stem.startswith("model.layers."):
            index, _, local = stem[len("model.layers."):].partition(".")
            name = f"blk.{index}.{names[local]}.{kind}"
        else:
            name = f"{_TOP_NAMES[stem]}.{kind}"
        tensor = tensor.detach().float()
        if spec.permute_qk and local_is(hf_name, "q_proj"):
            tensor = _permute(tensor, cfg.num_attention_heads)
        if spec.permute_qk and local_is(hf_name, "k_proj"):
            tensor = _permute(tensor, cfg.num_key_value_heads)
        if spec.norm_shift and hf_name.endswith("norm.weight"):
            tensor = tensor + spec.norm_shift
        out[name] = tensor.numpy().astype(np.float32)
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type") == "llama3":
        out["rope_freqs.weight"] = _llama3_rope_freqs(cfg)
    if rope.get("rope_type") == "longrope":
        out["rope_factors_long.weight"] = np.array(rope["long_factor"], dtype=np.float32)
        out["rope_factors_short.weight"] = np.array(rope["short_factor"], dtype=np.float32)
    return out


def local_is(hf_name: str, module: str) -> bool:
    return hf_name.endswith(f".{module}.weight")


def write_gguf(path: Path, spec: TinySpec, cfg: Any, tensors: dict[str, np.ndarray], *,
               arch: str | None = None, quantize: gguf.GGMLQuantizationType | None = None) -> Path:
    """Metadata keys as convert_hf_to_gguf.py writes them, then the tensors (2-D ones quantized if asked)."""
    arch = arch or spec.gguf_arch
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = cfg.rope_parameters
    if "rope_theta" in rope:
        writer.add_rope_freq_base(rope["rope_theta"])
    if spec.extra_metadata:
        spec.extra_metadata(writer, cfg)
    if spec.vocab_in_tokens:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    else:
        writer.add_vocab_size(cfg.vocab_size)
    for name, array in tensors.items():
        if quantize is not None and array.ndim == 2:
            writer.add_tensor(name, gguf.quants.quantize(array, quantize), raw_dtype=quantize)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def randomize(model: torch.nn.Module, spec: TinySpec, seed: int) -> None:
    """Weights large enough that every part of the network moves the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("norm.weight"):
                parameter.copy_((0.0 if spec.norm_shift else 1.0) + 0.2 * noise)
            elif "embed_tokens" in name:
                parameter.copy_(0.5 * noise)
            elif parameter.dim() == 2:
                parameter.copy_(noise / math.sqrt(parameter.shape[1]))
            else:  # biases
                parameter.copy_(0.2 * noise)


@dataclass
class Reference:
    """A tiny HF model, its GGUF, and HF's float32 logits [N_TOKENS, vocab] for `tokens`."""

    spec: TinySpec
    hf_model: Any
    gguf_path: Path
    tokens: torch.Tensor  # [N_TOKENS]
    logits: torch.Tensor  # [N_TOKENS, vocab]
    tensors: dict[str, np.ndarray]

    def hf_logits(self, tokens: torch.Tensor) -> torch.Tensor:  # [T] -> [T, vocab]
        with torch.no_grad():
            return self.hf_model(input_ids=tokens[None], use_cache=False).logits[0].float()


_REFERENCES: dict[str, Reference] = {}


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Reference]:
    def build(name: str) -> Reference:
        if name not in _REFERENCES:
            spec = SPECS[name]
            cfg = spec.config()
            cfg._attn_implementation = "eager"
            torch.manual_seed(0)
            hf_model = getattr(transformers, spec.hf_class)(cfg).eval()
            randomize(hf_model, spec, seed=sum(map(ord, name)))
            tensors = gguf_tensors(spec, hf_model)
            path = write_gguf(tmp_path_factory.mktemp(name) / f"{name}.gguf", spec, cfg, tensors)
            tokens = torch.randint(0, cfg.vocab_size, (N_TOKENS,), generator=torch.Generator().manual_seed(7))
            ref = Reference(spec, hf_model, path, tokens, torch.empty(0), tensors)
            ref.logits = ref.hf_logits(tokens)
            _REFERENCES[name] = ref
        return _REFERENCES[name]

    return build


@pytest.fixture
def write_tiny_gguf(reference: Callable[[str], Reference]) -> Callable[..., Path]:
    """write_tiny_gguf(name, path, drop=(), arch=None, quantize=None, tensors=None) -> path of a variant."""

    def write(name: str, path: Path, *, drop: tuple[str, ...] = (), arch: str | None = None,
              quantize: gguf.GGMLQuantizationType | None = None,
              tensors: dict[str, np.ndarray] | None = None) -> Path:
        ref = reference(name)
        chosen = {k: v for k, v in (tensors or ref.tensors).items() if k not in drop}
        return write_gguf(path, ref.spec, ref.hf_model.config, chosen, arch=arch, quantize=quantize)

    return write
