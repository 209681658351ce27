"""Whisper in whisper.cpp's legacy GGML format (`ggml-tiny.en.bin` …) -> openai/whisper.

The layout is what whisper.cpp's `models/convert-pt-to-ggml.py` (and convert-h5-to-ggml.py) writes and
`whisper_model_load` reads, all little-endian 32-bit integers unless said otherwise:

    u32 magic 0x67676d6c ("ggml");
    hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state,
        n_text_head, n_text_layer, n_mels, ftype (+ 1000 × the quantization version in quantized files);
    mel filters: n_mel, n_fft, then n_mel × n_fft f32;
    vocabulary: a count, then per token a u32 byte length and the raw token bytes (tiktoken's ranks, so usually
        the eot ordinary tokens; whisper.cpp adds the special tokens itself);
    tensors until the end of the file: n_dims, name length, ggml type, the dims innermost first (ne[0] is the
        last numpy axis), the name (openai/whisper's), the data: f32, f16, or ggml blocks of ne[0] values
        (whisper.cpp's quantize tool turns every 2-D tensor but the positional embeddings and conv biases into
        Q4_0 … Q8_0 or K-quants).

The converter squeezes every tensor and stores the conv biases as [n, 1]; shapes are matched to openai's by
their non-unit dimensions. Quantized blocks are expanded with the `gguf` package's reference dequantizers.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camelid.errors import BadModelFile, UnknownModel, UnsupportedModel
from camelid.speech.loaders.openai import (
    build_whisper,
    byte_level,
    dimensions,
    language_count,
    layout_config,
    tokenizer_from_pieces,
)
from camelid.speech.model import ModelDimensions, Whisper
from camelid.speech.tokenizer import WhisperTokenizer

GGML_MAGIC = 0x67676D6C
MAGIC_BYTES = struct.pack("<I", GGML_MAGIC)  # b"lmgg" at the start of the file
HPARAMS = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx",
           "n_text_state", "n_text_head", "n_text_layer", "n_mels", "ftype")
QUANTIZATION_VERSION = 2  # GGML_QNT_VERSION: the block layouts whisper.cpp reads today
QUANTIZATION_FACTOR = 1000  # GGML_QNT_VERSION_FACTOR
F32, F16, BF16 = 0, 1, 30  # ggml_type ids
PLAIN_TYPES = {F32: np.dtype("<f4"), F16: np.dtype("<f2"), BF16: np.dtype("<u2")}
MAX_NAME = 512


@dataclass
class GgmlFile:
    """A parsed whisper.cpp model file: tensors are float32 arrays in the file's (squeezed) shape."""

    path: Path
    hparams: dict[str, int]
    mel_filters: np.ndarray  # [n_mel, n_fft]
    vocabulary: list[bytes]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml_type id per tensor

    @property
    def ftype(self) -> int:
        return self.hparams["ftype"] % QUANTIZATION_FACTOR

    @property
    def quantization_version(self) -> int:
        return self.hparams["ftype"] // QUANTIZATION_FACTOR


class _Reader:
    """Bounds-checked little-endian reads over the mapped file; an overrun is one clear BadModelFile."""

    def __init__(self, data: np.ndarray, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    @property
    def left(self) -> int:
        return self.data.size - self.offset

    def take(self, size: int, what: str) -> int:
        start = self.offset
        if size < 0 or start + size > self.data.size:
            raise BadModelFile(f"{self.path} is truncated or corrupt: reading {what} at byte {start} needs "
                               f"{size} bytes, but the file ends at byte {self.data.size}")
        self.offset = start + size
        return start

    def ints(self, count: int, what: str, fmt: str = "i") -> tuple[int, ...]:
        start = self.take(4 * count, what)
        return struct.unpack_from(f"<{count}{fmt}", self.data, start)

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        start = self.take(count * dtype.itemsize, what)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start)


def _open(path: str | os.PathLike) -> tuple[np.ndarray, Path]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise UnknownModel(f"{path} is not a file")
    try:
        size = path.stat().st_size
        data = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    except OSError as err:
        raise BadModelFile(f"{path} cannot be read: {err}") from None
    if data[:4].tobytes() != MAGIC_BYTES:
        raise BadModelFile(f"{path} is not a whisper.cpp GGML model (it does not start with the 'ggml' magic)")
    return data, path


def read_ggml(path: str | os.PathLike, tensors: bool = True) -> GgmlFile:
    """Parse a whisper.cpp model file (with tensors=False: only hparams, mel filters and vocabulary)."""
    data, path = _open(path)
    reader = _Reader(data, path)
    reader.take(4, "the magic")
    hparams = dict(zip(HPARAMS, reader.ints(len(HPARAMS), "the hyperparameters"), strict=True))
    n_mel, n_fft = reader.ints(2, "the mel filter size")
    if n_mel < 0 or n_fft < 0:
        raise BadModelFile(f"{path} is corrupt: mel filters of {n_mel} × {n_fft}")
    filters = reader.array(np.dtype("<f4"), n_mel * n_fft, "the mel filters").reshape(n_mel, n_fft).copy()
    (count,) = reader.ints(1, "the vocabulary size")
    if not 0 <= count <= reader.left // 4:
        raise BadModelFile(f"{path} is corrupt: a vocabulary of {count} tokens does not fit in the file")
    vocabulary = []
    for index in range(count):
        (length,) = reader.ints(1, f"the length of token {index}", "I")
        start = reader.take(length, f"token {index}")
        vocabulary.append(data[start:start + length].tobytes())
    parsed = GgmlFile(path, hparams, filters, vocabulary)
    while tensors and reader.left:
        _read_tensor(reader, parsed)
    return parsed


def _read_tensor(reader: _Reader, parsed: GgmlFile) -> None:
    path = reader.path
    n_dims, name_length, ttype = reader.ints(3, f"a tensor header at byte {reader.offset}")
    if not 1 <= n_dims <= 4 or not 0 < name_length <= MAX_NAME:
        raise BadModelFile(f"{path} is corrupt: a tensor header at byte {reader.offset - 12} has {n_dims} "
                           f"dimensions and a name of {name_length} bytes")
    ne = reader.ints(n_dims, "the tensor dimensions")
    start = reader.take(name_length, "a tensor name")
    try:
        name = reader.data[start:start + name_length].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise BadModelFile(f"{path} is corrupt: the tensor name at byte {start} is not UTF-8") from None
    if min(ne) <= 0:
        raise BadModelFile(f"{path} is corrupt: tensor {name} has dimensions {list(ne)}")
    if name in parsed.tensors:
        raise BadModelFile(f"{path} is corrupt: tensor {name} appears twice")
    shape = tuple(reversed(ne))  # numpy order: ne[0] is the innermost axis
    parsed.tensors[name] = _tensor_data(reader, parsed, name, ttype, shape)
    parsed.tensor_types[name] = ttype


def _tensor_data(reader: _Reader, parsed: GgmlFile, name: str, ttype: int, shape: tuple[int, ...]
                 ) -> np.ndarray:
    count = math.prod(shape)
    if ttype in PLAIN_TYPES:
        value = reader.array(PLAIN_TYPES[ttype], count, f"the data of tensor {name}").reshape(shape)
        if ttype == BF16:
            return (value.astype(np.uint32) << 16).view(np.float32)
        return value.astype(np.float32)  # a copy: nothing keeps the memory map alive
    qtype, block, type_size = _quant_type(ttype, name, reader.path)
    if parsed.quantization_version != QUANTIZATION_VERSION:
        raise UnsupportedModel(f"{reader.path} was quantized with ggml quantization version "
                               f"{parsed.quantization_version}; camelid reads version {QUANTIZATION_VERSION} "
                               f"(re-quantize it with a current whisper.cpp)")
    if shape[-1] % block:
        raise BadModelFile(f"{reader.path} is corrupt: tensor {name} rows of {shape[-1]} values are not whole "
                           f"blocks of {block}")
    rows = count // shape[-1]
    row_bytes = shape[-1] // block * type_size
    raw = reader.array(np.dtype(np.uint8), rows * row_bytes, f"the data of tensor {name}")
    from gguf.quants import dequantize  # the ggml block formats' reference arithmetic

    try:
        values = dequantize(raw.reshape(rows, row_bytes), qtype)
    except NotImplementedError:
        raise UnsupportedModel(f"{reader.path}: tensor {name} uses ggml type {qtype.name}, which the gguf "
                               f"package cannot dequantize") from None
    return np.asarray(values, dtype=np.float32).reshape(shape)


def _quant_type(ttype: int, name: str, path: Path) -> tuple[Any, int, int]:
    """(GGMLQuantizationType, values per block, bytes per block) of a quantized ggml type id."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        qtype = GGMLQuantizationType(ttype)
    except ValueError:
        raise BadModelFile(f"{path} is corrupt: tensor {name} has unknown ggml type {ttype}") from None
    if qtype not in GGML_QUANT_SIZES:
        raise UnsupportedModel(f"{path}: tensor {name} has ggml type {qtype.name}, which camelid cannot read")
    block, type_size = GGML_QUANT_SIZES[qtype]
    return qtype, block, type_size


def whisper_dimensions(ggml: GgmlFile) -> ModelDimensions:
    return dimensions({key: value for key, value in ggml.hparams.items() if key != "ftype"}, ggml.path)


def whisper_state_dict(ggml: GgmlFile, dims: ModelDimensions) -> dict[str, torch.Tensor]:
    """The openai/whisper state_dict (float32): each tensor reshaped to openai's shape when it only differs by
    unit dimensions (the converter's squeeze, the [n, 1] conv biases). Others are left for check_state_dict
    to report."""
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in Whisper(dims).state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for name, value in ggml.tensors.items():
        shape = expected.get(name)
        if shape is not None and _squeezed(shape) == _squeezed(value.shape):
            value = value.reshape(shape)
        state[name] = torch.from_numpy(np.ascontiguousarray(value))
    return state


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(size for size in shape if size != 1)


def read_whisper(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelDimensions, dict[str, Any]]:
    """(openai/whisper state_dict in float32, ModelDimensions, CTranslate2-style config) of a whisper.cpp
    model. The config holds what openai's token layout implies; the file has no alignment heads."""
    ggml = read_ggml(path)
    dims = whisper_dimensions(ggml)
    if not ggml.tensors:
        raise BadModelFile(f"{ggml.path} holds no tensors (truncated after the vocabulary?)")
    return whisper_state_dict(ggml, dims), dims, layout_config(dims)


def load_whisper(path: str | os.PathLike) -> tuple[Whisper, dict[str, Any]]:
    """A ready (eval, float32, CPU) Whisper and its config from a whisper.cpp ggml-*.bin."""
    state, dims, config = read_whisper(path)
    return build_whisper(state, dims, config, path), config


def tokenizer_from_ggml(ggml: GgmlFile) -> WhisperTokenizer | None:
    """The tokenizer of a parsed file: its token bytes as byte-level pieces (ids = tiktoken ranks, so the BPE
    merges by rank) and openai's special tokens after them. None when n_vocab is not openai's layout."""
    n_vocab = ggml.hparams["n_vocab"]
    if language_count(n_vocab) is None:
        return None
    return tokenizer_from_pieces([byte_level(raw) for raw in ggml.vocabulary], n_vocab, ggml.path)


def load_tokenizer(path: str | os.PathLike) -> WhisperTokenizer | None:
    """The tokenizer stored in a whisper.cpp model file (reads only the part before the tensors)."""
    return tokenizer_from_ggml(read_ggml(path, tensors=False))


def is_ggml(path: str | os.PathLike) -> bool:
    """Whether the file starts with the GGML magic."""
    try:
        with open(path, "rb") as file:
            return file.read(4) == MAGIC_BYTES
    except OSError:
        return False
