"""Whisper in the Hugging Face layout (openai/whisper-* and distil-whisper repos) -> openai/whisper.

A folder (or a {file name: path} mapping) with `config.json` and the weights: `model.safetensors`, a sharded
`model.safetensors.index.json` + shards, or a legacy `pytorch_model.bin`; usually also `generation_config.json`
(suppress tokens, alignment heads, language ids), `vocab.json` + `merges.txt` and/or `tokenizer.json`.

safetensors is read here with numpy over a memory map: a little-endian u64 header size N, an N-byte JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}} with offsets relative to the end
of the header, then the raw C-order data.

Names (transformers `modeling_whisper.py`; `model.` is absent when a bare WhisperModel was saved):
    model.encoder.conv1/conv2                    -> encoder.conv1/conv2
    model.encoder.embed_positions.weight         -> encoder.positional_embedding
    model.{encoder,decoder}.layers.N.<part>      -> {encoder,decoder}.blocks.N.<part>, where
        self_attn.{q,k,v,out}_proj -> attn.{query,key,value,out}, self_attn_layer_norm -> attn_ln,
        encoder_attn.* -> cross_attn.*, encoder_attn_layer_norm -> cross_attn_ln,
        fc1 -> mlp.0, fc2 -> mlp.2, final_layer_norm -> mlp_ln
    model.encoder.layer_norm -> encoder.ln_post;  model.decoder.layer_norm -> decoder.ln
    model.decoder.embed_tokens.weight -> decoder.token_embedding.weight
    model.decoder.embed_positions.weight -> decoder.positional_embedding
    proj_out.weight: tied to embed_tokens (usually not saved); a different one is refused.
The key projections have no bias in both; the query scaling is applied at run time in both.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camelid.errors import BadModelFile, UnknownModel, UnsupportedModel
from camelid.speech.loaders.openai import (
    build_whisper,
    dimensions,
    eot_id,
    language_count,
    layout_config,
    tokenizer_from_pieces,
)
from camelid.speech.model import ModelDimensions, Whisper
from camelid.speech.tokenizer import WhisperTokenizer, read_merges

Source = str | os.PathLike | Mapping[str, str | os.PathLike]

SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
    "BF16": np.dtype("<u2"),  # read as raw 16 bits, widened to float32 below
}
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
BLOCK_PARTS = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln",
}
TOP_LEVEL = {
    "encoder.conv1": "encoder.conv1", "encoder.conv2": "encoder.conv2", "encoder.layer_norm": "encoder.ln_post",
    "decoder.layer_norm": "decoder.ln", "decoder.embed_tokens": "decoder.token_embedding",
}
POSITIONS = {"encoder.embed_positions.weight": "encoder.positional_embedding",
             "decoder.embed_positions.weight": "decoder.positional_embedding"}
LAYER_NAME = re.compile(r"(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)")
TIED_PROJECTION = "proj_out.weight"
MAX_VOCABULARY_HOLES = 16  # ids below eot a vocabulary may lack (multilingual vocab.json files lack one)


# --- safetensors ------------------------------------------------------------------------------------------------

def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{name: float32 array} of a .safetensors file (F32/F16/BF16/F64). BadModelFile when the file is
    truncated or its header is inconsistent; UnsupportedModel for integer or other tensor types."""
    path = Path(path)
    try:
        size = path.stat().st_size
        data = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    except OSError as err:
        raise BadModelFile(f"{path} cannot be read: {err}") from None
    if size < 8:
        raise BadModelFile(f"{path} is truncated: {size} bytes, too short for a safetensors header")
    (header_size,) = struct.unpack_from("<Q", data, 0)
    if header_size > min(MAX_HEADER, size - 8):
        raise BadModelFile(f"{path} is truncated or not a safetensors file: its header claims {header_size} "
                           f"bytes, the file has {size - 8} after the size field")
    try:
        header = json.loads(data[8:8 + header_size].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(f"{path} is corrupt: the safetensors header is not JSON ({err})") from None
    if not isinstance(header, dict):
        raise BadModelFile(f"{path} is corrupt: the safetensors header is not a JSON object")
    start = 8 + header_size
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name != "__metadata__":
            tensors[name] = _safetensors_array(data, start, name, info, path)
    return tensors


def _safetensors_array(data: np.ndarray, start: int, name: str, info: Any, path: Path) -> np.ndarray:
    try:
        dtype_name, shape, (begin, end) = info["dtype"], [int(n) for n in info["shape"]], info["data_offsets"]
        begin, end = int(begin), int(end)
    except (TypeError, KeyError, ValueError):
        raise BadModelFile(f"{path} is corrupt: the header entry of {name} is malformed") from None
    if dtype_name not in SAFETENSORS_DTYPES:
        raise UnsupportedModel(f"{path}: tensor {name} is {dtype_name}; camelid reads F32, F16, BF16 and F64 "
                               f"Whisper weights")
    dtype = SAFETENSORS_DTYPES[dtype_name]
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if min(shape, default=0) < 0 or not 0 <= begin <= end or end - begin != count * dtype.itemsize:
        raise BadModelFile(f"{path} is corrupt: tensor {name} {shape} of {dtype_name} does not fit its byte "
                           f"range {begin}…{end}")
    if start + end > data.size:
        raise BadModelFile(f"{path} is truncated: tensor {name} ends at byte {start + end}, the file at "
                           f"{data.size}")
    value = np.frombuffer(data, dtype=dtype, count=count, offset=start + begin).reshape(shape)
    if dtype_name == "BF16":
        return (value.astype(np.uint32) << 16).view(np.float32)
    return value.astype(np.float32)  # a copy: nothing keeps the memory map alive


def _read_torch_bin(path: Path) -> dict[str, np.ndarray]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch.load fails in many ways on a broken zip or pickle)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadModelFile(f"{path} is not a readable PyTorch state_dict (truncated or corrupt?): "
                           f"{reason[:300]}") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadModelFile(f"{path} is not a state_dict of tensors")
    return {str(key): value.float().numpy() for key, value in state.items()}


# --- files ------------------------------------------------------------------------------------------------------

def model_files(source: Source | Any) -> dict[str, Path]:
    """{file name: path} of a Hugging Face model: a folder, a file inside one, a mapping, or anything with a
    `.files` mapping."""
    files = getattr(source, "files", None)
    if isinstance(files, Mapping):
        source = files
    if isinstance(source, Mapping):
        return {str(name): Path(path) for name, path in source.items()}
    path = Path(source).expanduser()
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise UnknownModel(f"{path} is not a Hugging Face model folder")
    return {entry.name: entry for entry in path.iterdir() if entry.is_file()}


def read_json(files: Mapping[str, Path], name: str) -> dict[str, Any] | None:
    """The JSON object in file `name`, None when the model has no such file."""
    if name not in files:
        return None
    try:
        value = json.loads(Path(files[name]).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(f"{files[name]}: {name} cannot be read: {err}") from None
    if not isinstance(value, dict):
        raise BadModelFile(f"{files[name]}: {name} is not a JSON object")
    return value


def read_tensors(files: Mapping[str, Path]) -> dict[str, np.ndarray]:
    """Every tensor of the model under its Hugging Face name."""
    if "model.safetensors" in files:
        return read_safetensors(files["model.safetensors"])
    index = read_json(files, "model.safetensors.index.json")
    if index is not None:
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            raise BadModelFile(f"{files['model.safetensors.index.json']}: no weight_map")
        tensors: dict[str, np.ndarray] = {}
        for shard in sorted(set(map(str, weight_map.values()))):
            if shard not in files:
                raise BadModelFile(f"the model's shard {shard} is missing (named in model.safetensors.index.json)")
            tensors.update(read_safetensors(files[shard]))
        return tensors
    if "pytorch_model.bin" in files:
        return _read_torch_bin(files["pytorch_model.bin"])
    listing = ", ".join(sorted(files)) or "none"
    raise BadModelFile(f"the Hugging Face model has no model.safetensors or pytorch_model.bin (files: {listing})")


# --- mapping ----------------------------------------------------------------------------------------------------

def openai_name(hf_name: str) -> str | None:
    """The openai/whisper name of a Hugging Face Whisper tensor; None for the tied output projection.
    Unknown names come back unchanged (check_state_dict then reports them)."""
    name = hf_name.removeprefix("model.")
    if hf_name == TIED_PROJECTION:
        return None
    if name in POSITIONS:
        return POSITIONS[name]
    match = LAYER_NAME.fullmatch(name)
    if match:
        stack, layer, part, kind = match.groups()
        return f"{stack}.blocks.{layer}.{BLOCK_PARTS[part]}.{kind}" if part in BLOCK_PARTS else hf_name
    base, _, kind = name.rpartition(".")
    return f"{TOP_LEVEL[base]}.{kind}" if base in TOP_LEVEL else hf_name


def whisper_state_dict(tensors: Mapping[str, np.ndarray], origin: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Hugging Face tensors renamed to openai/whisper's names (float32); the tied projection is checked."""
    state: dict[str, torch.Tensor] = {}
    for hf_name, value in tensors.items():
        name = openai_name(hf_name)
        if name is None:
            continue
        if name in state:
            raise BadModelFile(f"{origin}: two tensors map onto {name} (one is {hf_name})")
        state[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    projection = tensors.get(TIED_PROJECTION)
    embedding = state.get("decoder.token_embedding.weight")
    if projection is not None and embedding is not None and not np.array_equal(projection, embedding.numpy()):
        raise UnsupportedModel(f"{origin}: proj_out differs from the token embedding; Whisper ties them")
    return state


def whisper_dimensions(config: Mapping[str, Any], origin: str | os.PathLike) -> ModelDimensions:
    """ModelDimensions from a transformers WhisperConfig (config.json)."""
    if config.get("model_type", "whisper") != "whisper":
        raise UnsupportedModel(f"{origin}: config.json describes a {config.get('model_type')!r} model, "
                               f"not Whisper")
    keys = {"n_mels": "num_mel_bins", "n_audio_ctx": "max_source_positions", "n_audio_state": "d_model",
            "n_audio_head": "encoder_attention_heads", "n_audio_layer": "encoder_layers",
            "n_vocab": "vocab_size", "n_text_ctx": "max_target_positions", "n_text_state": "d_model",
            "n_text_head": "decoder_attention_heads", "n_text_layer": "decoder_layers"}
    missing = sorted({key for key in keys.values() if key not in config})
    if missing:
        raise BadModelFile(f"{origin}: config.json lacks {', '.join(missing)}")
    width = config["d_model"]
    for key in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if isinstance(width, int) and config.get(key, 4 * width) != 4 * width:
            raise UnsupportedModel(f"{origin}: {key} {config.get(key)} is not 4 × d_model ({4 * width}), "
                                   f"which Whisper's MLP assumes")
    if config.get("activation_function", "gelu") != "gelu":
        raise UnsupportedModel(f"{origin}: activation {config.get('activation_function')!r}; Whisper uses gelu")
    if config.get("scale_embedding", False):
        raise UnsupportedModel(f"{origin}: scale_embedding is set; openai's Whisper does not scale embeddings")
    try:
        return dimensions({field: config[key] for field, key in keys.items()}, origin)
    except BadModelFile as err:  # name config.json's keys, not openai's
        message = str(err)
        for field, key in keys.items():
            message = message.replace(f"dimension {field} ", f"dimension {field} (config.json {key}) ")
        raise BadModelFile(message) from None


def whisper_config(files: Mapping[str, Path], config: Mapping[str, Any], dims: ModelDimensions
                   ) -> dict[str, Any]:
    """CTranslate2-style config (what its converter writes): suppress_ids, suppress_ids_begin, lang_ids and
    alignment_heads from generation_config.json, else config.json, else openai's token layout."""
    generation = read_json(files, "generation_config.json") or {}
    out = layout_config(dims)
    for target, key in (("suppress_ids", "suppress_tokens"), ("suppress_ids_begin", "begin_suppress_tokens"),
                        ("alignment_heads", "alignment_heads")):
        value = generation.get(key, config.get(key))
        if isinstance(value, list):
            out[target] = value
    lang_to_id = generation.get("lang_to_id")
    if isinstance(lang_to_id, dict) and lang_to_id:
        out["lang_ids"] = sorted(int(index) for index in lang_to_id.values())
    return out


def read_whisper(source: Source | Any) -> tuple[dict[str, torch.Tensor], ModelDimensions, dict[str, Any]]:
    """(openai/whisper state_dict in float32, ModelDimensions, CTranslate2-style config) of a Hugging Face
    Whisper model."""
    files = model_files(source)
    config = read_json(files, "config.json")
    if config is None:
        listing = ", ".join(sorted(files)) or "none"
        raise BadModelFile(f"the Hugging Face model has no config.json (files: {listing})")
    dims = whisper_dimensions(config, files["config.json"])
    state = whisper_state_dict(read_tensors(files), files["config.json"].parent)
    return state, dims, whisper_config(files, config, dims)


def load_whisper(source: Source | Any) -> tuple[Whisper, dict[str, Any]]:
    """A ready (eval, float32, CPU) Whisper and its CTranslate2-style config from a Hugging Face model."""
    files = model_files(source)
    state, dims, config = read_whisper(files)
    return build_whisper(state, dims, config, files["config.json"].parent), config


# --- tokenizer --------------------------------------------------------------------------------------------------

def read_merges_txt(path: Path) -> list[tuple[str, str]]:
    """merges.txt: a "#version" line, then one "a b" merge per line in priority order."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise BadModelFile(f"{path}: merges.txt cannot be read: {err}") from None
    pairs = [line.split(" ") for line in lines if line and not line.startswith("#version")]
    if any(len(pair) != 2 for pair in pairs):
        raise BadModelFile(f"{path}: merges.txt has a line that is not two pieces")
    return [(pair[0], pair[1]) for pair in pairs]


def load_tokenizer(source: Source | Any, n_vocab: int | None = None) -> WhisperTokenizer | None:
    """The tokenizer of a Hugging Face Whisper model from tokenizer.json or vocab.json (+ merges.txt); None
    when the model has neither. Ordinary tokens come from the file, special tokens from openai's layout."""
    files = model_files(source)
    if n_vocab is None:
        config = read_json(files, "config.json") or {}
        n_vocab = config.get("vocab_size") if isinstance(config.get("vocab_size"), int) else None
    if n_vocab is None or language_count(n_vocab) is None:
        return None
    tokenizer_json = read_json(files, "tokenizer.json")
    vocab = None
    if tokenizer_json is not None:
        model = tokenizer_json.get("model")
        vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(vocab, dict):
        vocab = read_json(files, "vocab.json")
    if vocab is None:
        return None
    origin = files.get("tokenizer.json") or files["vocab.json"]
    eot = eot_id(n_vocab)
    ordinary = [""] * eot  # a hole (a missing id) decodes to nothing, as in whisper.cpp
    for piece, index in vocab.items():
        if not isinstance(index, int):
            raise BadModelFile(f"{origin}: the vocabulary maps {piece!r} to {index!r}, not an id")
        if 0 <= index < eot:
            ordinary[index] = piece
    holes = ordinary.count("")
    if holes > MAX_VOCABULARY_HOLES:
        raise BadModelFile(f"{origin}: the vocabulary lacks {holes} of the {eot} ordinary token ids")
    merges = None
    if tokenizer_json is not None:
        merges = read_merges(files["tokenizer.json"])
    elif "merges.txt" in files:
        merges = read_merges_txt(files["merges.txt"])
    return tokenizer_from_pieces(ordinary, n_vocab, origin, merges)
