"""GGUF file → ModelConfig → model built on the meta device → weights assigned by name, without copying.

Every `nn.Linear` of the model becomes a `QuantLinear` and every `nn.Embedding` a `QuantEmbedding` over a
zero-copy view of the file's bytes (the weights stay quantized, in the memory map). Norm weights and other
small tensors become float32 parameters (a plain view for F32 tensors). When the file has no `output.weight`
the LM head shares token_embd's bytes (tied embeddings). Tensors the model does not use are ignored.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from gguf.constants import GGMLQuantizationType
from torch import nn

from camelid import quant
from camelid.errors import BadModelFile, UnsupportedModel
from camelid.gguf.reader import GGUFFile, TensorInfo
from camelid.kernels import QuantEmbedding, QuantLinear
from camelid.models.config import ModelConfig
from camelid.models.registry import get_architecture

log = logging.getLogger(__name__)

F32 = int(GGMLQuantizationType.F32)
TIED_OUTPUT = "output"  # the LM head, which falls back to token_embd's bytes
EMBEDDING = "token_embd"


def load_gguf(source: str | Path | GGUFFile) -> tuple[nn.Module, ModelConfig, GGUFFile]:
    """Build the model a GGUF file describes, its weights left quantized in the file's memory map."""
    gguf_file = source if isinstance(source, GGUFFile) else GGUFFile(source)
    model_class = get_architecture(gguf_file.architecture)
    embedding = gguf_file.tensors.get(f"{EMBEDDING}.weight")
    embedding_rows = embedding.shape[0] if embedding is not None else None
    config = ModelConfig.from_metadata(gguf_file.metadata, default_vocab_size=embedding_rows)
    with torch.device("meta"):
        model = model_class(config)
    with warnings.catch_warnings():  # the memory map is read-only, and so are the tensors viewing it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        _WeightAssigner(model, gguf_file).assign_all()
    model.eval()
    model.requires_grad_(False)
    _check_nothing_on_meta(model, gguf_file)
    return model, config, gguf_file


class _WeightAssigner:
    """Replaces the meta-device modules and parameters of `model` with the file's tensors."""

    def __init__(self, model: nn.Module, gguf_file: GGUFFile) -> None:
        self.model, self.file, self.tensors = model, gguf_file, gguf_file.tensors

    def assign_all(self) -> None:
        for name, module in list(self.model.named_modules()):
            if isinstance(module, nn.Linear):
                self._replace(name, self._linear(name, module))
            elif isinstance(module, nn.Embedding):
                self._replace(name, self._embedding(name, module))
        for name, parameter in list(self.model.named_parameters()):
            self._set_parameter(name, parameter)
        for tensor_name, buffer_path in getattr(self.model, "optional_tensors", {}).items():
            if tensor_name in self.tensors:
                self._set_buffer(buffer_path, self._float(self.tensors[tensor_name]))

    def _require(self, name: str) -> TensorInfo:
        info = self.tensors.get(name)
        if info is None:
            raise UnsupportedModel(f"{self.file.path}: tensor '{name}' is missing "
                                   f"(required by the {self.file.architecture} architecture)")
        return info

    def _check_shape(self, info: TensorInfo, expected: tuple[int, ...]) -> None:
        if tuple(info.shape) != tuple(expected):
            raise BadModelFile(f"{self.file.path}: tensor '{info.name}' has shape {list(info.shape)}, "
                               f"expected {list(expected)}")

    def _linear(self, name: str, module: nn.Linear) -> QuantLinear:
        info = self.tensors.get(f"{name}.weight")
        if info is None and name == TIED_OUTPUT:
            info = self._require(f"{EMBEDDING}.weight")  # tied embeddings: share the same bytes
        elif info is None:
            info = self._require(f"{name}.weight")
        self._check_shape(info, (module.out_features, module.in_features))
        bias_info = self.tensors.get(f"{name}.bias")
        if module.bias is not None and bias_info is None:
            bias_info = self._require(f"{name}.bias")
        bias = None
        if bias_info is not None:  # declared, or optional and present (llama.cpp reads such biases too)
            self._check_shape(bias_info, (module.out_features,))
            bias = self._float(bias_info)
        return QuantLinear(self._bytes(info), info.ggml_type, module.in_features, module.out_features, bias)

    def _embedding(self, name: str, module: nn.Embedding) -> QuantEmbedding:
        info = self._require(f"{name}.weight")
        self._check_shape(info, (module.num_embeddings, module.embedding_dim))
        return QuantEmbedding(self._bytes(info), info.ggml_type, module.num_embeddings, module.embedding_dim)

    def _set_parameter(self, name: str, parameter: nn.Parameter) -> None:
        info = self._require(name)
        self._check_shape(info, tuple(parameter.shape))
        owner_path, _, attribute = name.rpartition(".")
        owner = self.model.get_submodule(owner_path)
        setattr(owner, attribute, nn.Parameter(self._float(info), requires_grad=False))

    def _set_buffer(self, path: str, tensor: torch.Tensor) -> None:
        owner_path, _, attribute = path.rpartition(".")
        setattr(self.model.get_submodule(owner_path), attribute, tensor)

    def _replace(self, name: str, new_module: nn.Module) -> None:
        parent_path, _, child = name.rpartition(".")
        setattr(self.model.get_submodule(parent_path), child, new_module)

    @staticmethod
    def _bytes(info: TensorInfo) -> torch.Tensor:
        """uint8 [rows, row_bytes] view of the tensor's bytes in the memory map (no copy)."""
        rows = info.shape[0] if len(info.shape) > 1 else 1
        return torch.from_numpy(info.data).view(rows, -1)

    @staticmethod
    def _float(info: TensorInfo) -> torch.Tensor:
        """float32 tensor of the file's shape: a view for F32, dequantized otherwise."""
        raw = torch.from_numpy(info.data)
        if info.ggml_type == F32:
            return raw.view(torch.float32).view(info.shape)
        return quant.dequantize(raw, info.ggml_type, tuple(info.shape))


def _check_nothing_on_meta(model: nn.Module, gguf_file: GGUFFile) -> None:
    left = [name for name, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise UnsupportedModel(f"{gguf_file.path}: no weights were loaded for {', '.join(left[:5])}"
                               + (f" and {len(left) - 5} more" if len(left) > 5 else ""))
