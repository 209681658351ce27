"""load_gguf: zero-copy quantized weights, tied embeddings, clear errors for files it cannot build."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from torch import nn

from camelid.errors import BadModelFile, UnsupportedModel
from camelid.gguf.reader import GGUFFile
from camelid.kernels import QuantEmbedding, QuantLinear
from camelid.loader import load_gguf


def inside_memory_map(tensor: torch.Tensor, gguf_file: GGUFFile) -> bool:
    start = gguf_file.buf.ctypes.data
    return start <= tensor.data_ptr() < start + gguf_file.size


def test_every_weight_is_a_view_of_the_file(reference: Callable) -> None:
    model, _, gguf_file = load_gguf(reference("qwen2").gguf_path)
    linears = [m for m in model.modules() if isinstance(m, QuantLinear)]
    assert len(linears) == 2 * 7 + 1 and not any(isinstance(m, nn.Linear) for m in model.modules())
    assert isinstance(model.token_embd, QuantEmbedding)
    for module in [*linears, model.token_embd]:
        assert module.weight.dtype == torch.uint8 and inside_memory_map(module.weight, gguf_file)
    assert all(inside_memory_map(p, gguf_file) for p in model.parameters())  # F32 norms: plain views
    assert model.blk[0].attn_q.bias is not None and model.blk[0].attn_output.bias is None
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def test_tied_output_shares_token_embd_bytes(reference: Callable) -> None:
    model, _, gguf_file = load_gguf(reference("qwen2").gguf_path)
    assert "output.weight" not in gguf_file.tensors
    assert model.output.weight.data_ptr() == model.token_embd.weight.data_ptr()
    assert inside_memory_map(model.output.weight, gguf_file)


def test_untied_output_has_its_own_tensor(reference: Callable) -> None:
    model, _, gguf_file = load_gguf(reference("llama").gguf_path)
    expected = gguf_file.tensors["output.weight"].offset
    assert model.output.weight.data_ptr() == gguf_file.buf.ctypes.data + expected


def test_accepts_an_open_gguf_file(reference: Callable) -> None:
    gguf_file = GGUFFile(reference("llama").gguf_path)
    _, config, same_file = load_gguf(gguf_file)
    assert same_file is gguf_file and config.n_layers == 2


def test_optional_rope_factors_are_loaded(reference: Callable) -> None:
    model, _, _ = load_gguf(reference("llama3_rope").gguf_path)
    assert model.rotary["default"].freq_factors is not None
    model, _, _ = load_gguf(reference("llama").gguf_path)
    assert model.rotary["default"].freq_factors is None


def test_missing_tensor_is_named(reference: Callable, write_tiny_gguf: Callable, tmp_path: Path) -> None:
    reference("llama")
    path = write_tiny_gguf("llama", tmp_path / "broken.gguf", drop=("blk.1.ffn_down.weight",))
    with pytest.raises(UnsupportedModel, match=r"tensor 'blk\.1\.ffn_down\.weight' is missing"):
        load_gguf(path)


def test_missing_bias_is_named(reference: Callable, write_tiny_gguf: Callable, tmp_path: Path) -> None:
    path = write_tiny_gguf("qwen2", tmp_path / "broken.gguf", drop=("blk.0.attn_k.bias",))
    with pytest.raises(UnsupportedModel, match=r"blk\.0\.attn_k\.bias"):
        load_gguf(path)


def test_unknown_architecture(write_tiny_gguf: Callable, tmp_path: Path) -> None:
    path = write_tiny_gguf("llama", tmp_path / "odd.gguf", arch="llamazilla")
    with pytest.raises(UnsupportedModel, match=r"'llamazilla' is not supported \(supported: .*llama"):
        load_gguf(path)


def test_wrong_shape_is_a_bad_file(reference: Callable, write_tiny_gguf: Callable, tmp_path: Path) -> None:
    tensors = dict(reference("llama").tensors)
    tensors["blk.0.attn_v.weight"] = tensors["blk.0.attn_v.weight"][:16]
    path = write_tiny_gguf("llama", tmp_path / "bad.gguf", tensors=tensors)
    with pytest.raises(BadModelFile, match=r"attn_v\.weight' has shape \[16, 64\], expected \[32, 64\]"):
        load_gguf(path)


def test_extra_tensors_are_ignored(reference: Callable, write_tiny_gguf: Callable, tmp_path: Path) -> None:
    ref = reference("qwen3")
    tensors = {**ref.tensors, "blk.0.some_future_thing.weight": ref.tensors["output_norm.weight"]}
    model, _, _ = load_gguf(write_tiny_gguf("qwen3", tmp_path / "extra.gguf", tensors=tensors))
    assert model.config.n_layers == 2


def test_quantized_weights_stay_quantized(reference: Callable, write_tiny_gguf: Callable,
                                          tmp_path: Path) -> None:
    """A Q8_0 file gives the logits of an F32 file holding its dequantized values."""
    ref = reference("llama")
    q8 = gguf.GGMLQuantizationType.Q8_0
    quantized = write_tiny_gguf("llama", tmp_path / "q8.gguf", quantize=q8)
    def roundtrip(array: np.ndarray) -> np.ndarray:
        return gguf.quants.dequantize(gguf.quants.quantize(array, q8), q8) if array.ndim == 2 else array

    dequantized = {name: roundtrip(array) for name, array in ref.tensors.items()}
    plain = write_tiny_gguf("llama", tmp_path / "f32.gguf", tensors=dequantized)
    model_q8, _, _ = load_gguf(quantized)
    model_f32, _, _ = load_gguf(plain)
    assert model_q8.blk[0].attn_q.ggml_type == int(q8) and model_q8.token_embd.ggml_type == int(q8)
    positions = torch.arange(len(ref.tokens))[None]
    with torch.no_grad():
        slot = torch.tensor([0])
        logits_q8 = model_q8(ref.tokens[None], positions, model_q8.new_cache(1, 32, torch.float32), slot)
        logits = model_f32(ref.tokens[None], positions, model_f32.new_cache(1, 32, torch.float32), slot)
    assert (logits_q8 - logits).abs().max() < 1e-4
    assert (logits_q8[0] - ref.logits).abs().max() > 1e-4  # quantization did change the weights
