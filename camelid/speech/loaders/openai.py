"""Whisper in openai-whisper's own checkpoint format (`~/.cache/whisper/tiny.en.pt` …), plus what every loader
shares: the openai/whisper state_dict -> ready model step and openai's token-id layout.

A checkpoint is a torch pickle of {"dims": {n_mels, n_audio_ctx, …}, "model_state_dict": {openai names: fp16
tensors}}; it is read with `torch.load(weights_only=True)`, so it cannot run code. Alignment heads are not in
openai's checkpoints (openai-whisper keeps them in a table keyed by model name); a checkpoint that carries an
`alignment_heads` entry (layer/head pairs, a bool [layers, heads] mask, or openai's base85+gzip mask) is used.

The checkpoint holds no vocabulary: openai-whisper ships it as `gpt2.tiktoken` / `multilingual.tiktoken`
(base64 token bytes and their rank = id, one per line). `tokenizer_from_tiktoken` builds the tokenizer from such
a file; `find_tiktoken_file` looks for it in an installed openai-whisper package.

Token ids (openai/whisper `tokenizer.py`): the ordinary byte-level BPE tokens 0…eot-1 (eot = 50256 English-only,
50257 multilingual), then <|endoftext|>, <|startoftranscript|>, one token per language, <|translate|>,
<|transcribe|>, <|startoflm|>, <|startofprev|>, <|nospeech|>, <|notimestamps|>, and the timestamps
<|0.00|> … up to n_vocab. The number of languages follows from n_vocab (99; 100 for large-v3).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import importlib.util
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from camelid.errors import BadModelFile, UnknownModel, UnsupportedModel
from camelid.speech.loaders.ct2 import check_state_dict
from camelid.speech.model import FIRST_MULTILINGUAL_VOCAB, VOCAB_WITHOUT_LANGUAGES, ModelDimensions, Whisper
from camelid.speech.tokenizer import LANGUAGES, WhisperTokenizer
from camelid.tokenizer.bpe import BYTE_TO_CHAR

DIMENSION_KEYS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_vocab",
                  "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")
ENGLISH_EOT = 50256  # eot of the English-only vocabulary (gpt2); multilingual vocabularies shift it by one
SPACE_TOKEN = 220  # " " in both vocabularies (openai/whisper suppresses it, and eot, at the first step)
TIMESTAMP_COUNT = 1501  # <|0.00|> … <|30.00|>
MAX_DIMENSION = 1 << 20  # far above any Whisper (large: width 1280, vocab 51866); guards against corrupt headers
MAX_POSITIONS = 1 << 26  # n_audio_ctx × width: the sinusoids are computed in memory before any weight is read


# --- the openai/whisper state_dict -> model step every loader ends with -------------------------------------

def build_whisper(state: Mapping[str, torch.Tensor], dims: ModelDimensions, config: Mapping[str, Any],
                  origin: str | os.PathLike) -> Whisper:
    """A ready (eval, float32, CPU, `prepare_for_decoding` done) Whisper from an openai/whisper state_dict,
    using config["alignment_heads"] when given. BadModelFile if a tensor is missing, extra or misshapen."""
    check_state_dict(state, dims, origin)
    with torch.device("meta"):
        model = Whisper(dims)
    model.load_state_dict(dict(state), strict=True, assign=True)
    heads = config.get("alignment_heads")
    if isinstance(heads, list) and heads:
        try:
            if not all(0 <= int(layer) < dims.n_text_layer and 0 <= int(head) < dims.n_text_head
                       for layer, head in heads):
                raise IndexError
            model.set_alignment_heads(heads)
        except (IndexError, TypeError, ValueError):
            raise BadModelFile(f"{origin}: alignment heads {heads!r} do not fit {dims.n_text_layer} layers × "
                               f"{dims.n_text_head} heads") from None
    return model.prepare_for_decoding().eval()


def dimensions(values: Mapping[str, Any], origin: str | os.PathLike) -> ModelDimensions:
    """ModelDimensions from a {name: int} mapping (openai's "dims"); BadModelFile when one is missing."""
    missing = [key for key in DIMENSION_KEYS if key not in values]
    if missing:
        raise BadModelFile(f"{origin}: the model dimensions lack {', '.join(missing)}")
    numbers: dict[str, int] = {}
    for key in DIMENSION_KEYS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise BadModelFile(f"{origin}: model dimension {key} is {value!r}, not a positive integer")
        numbers[key] = int(value)
    for state, head in (("n_audio_state", "n_audio_head"), ("n_text_state", "n_text_head")):
        if numbers[state] % numbers[head]:
            raise BadModelFile(f"{origin}: {numbers[head]} heads do not divide a width of {numbers[state]}")
    if max(numbers.values()) > MAX_DIMENSION or numbers["n_audio_ctx"] * numbers["n_audio_state"] > MAX_POSITIONS:
        raise BadModelFile(f"{origin}: implausible model dimensions {numbers} (corrupt?)")
    if numbers["n_audio_state"] != numbers["n_text_state"]:
        raise UnsupportedModel(f"{origin}: encoder width {numbers['n_audio_state']} differs from decoder width "
                               f"{numbers['n_text_state']}; Whisper's cross-attention needs them equal")
    return ModelDimensions(**numbers)


def layout_config(dims: ModelDimensions) -> dict[str, Any]:
    """The CTranslate2-style config entries that follow from openai's token layout alone (language ids and
    the first-step suppression of " " and eot); {} when n_vocab does not follow that layout."""
    languages = language_count(dims.n_vocab)
    if languages is None:
        return {}
    sot = eot_id(dims.n_vocab) + 1
    return {"lang_ids": list(range(sot + 1, sot + 1 + languages)),
            "suppress_ids_begin": [SPACE_TOKEN, eot_id(dims.n_vocab)]}


# --- openai's token layout ------------------------------------------------------------------------------------

def eot_id(n_vocab: int) -> int:
    """<|endoftext|>: the number of ordinary tokens (50256 English-only, 50257 multilingual)."""
    return ENGLISH_EOT + int(n_vocab >= FIRST_MULTILINGUAL_VOCAB)


def language_count(n_vocab: int) -> int | None:
    """How many language tokens a vocabulary of n_vocab ids has (None: not openai's layout)."""
    languages = n_vocab - VOCAB_WITHOUT_LANGUAGES - int(n_vocab >= FIRST_MULTILINGUAL_VOCAB)
    return languages if 0 < languages <= len(LANGUAGES) else None


def special_tokens(n_vocab: int) -> list[str]:
    """The names of ids eot … n_vocab-1 in openai/whisper's order."""
    languages = language_count(n_vocab)
    if languages is None:
        raise BadModelFile(f"a vocabulary of {n_vocab} ids does not follow Whisper's layout (51864 English-only, "
                           f"51865 multilingual, 51866 large-v3)")
    names = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|{code}|>" for code in list(LANGUAGES)[:languages]],
             "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
             "<|notimestamps|>"]
    timestamps = min(TIMESTAMP_COUNT, n_vocab - eot_id(n_vocab) - len(names))
    return names + [f"<|{index * 0.02:.2f}|>" for index in range(timestamps)]


def byte_level(raw: bytes) -> str:
    """Token bytes as a GPT-2 byte-level piece (the form vocabulary.txt and vocab.json use)."""
    return "".join(BYTE_TO_CHAR[byte] for byte in raw)


def whisper_vocabulary(ordinary: Sequence[str], n_vocab: int, origin: str | os.PathLike) -> list[str]:
    """The full id -> piece list: the first eot ordinary pieces, then openai's special tokens up to n_vocab.
    Extra entries after the ordinary ones (a file's own special tokens) are replaced by openai's names."""
    eot = eot_id(n_vocab)
    if len(ordinary) < eot:
        raise BadModelFile(f"{origin}: the vocabulary holds {len(ordinary)} tokens; a Whisper model with "
                           f"{n_vocab} ids needs the {eot} ordinary tokens before <|endoftext|>")
    return [*ordinary[:eot], *special_tokens(n_vocab)]


def tokenizer_from_pieces(ordinary: Sequence[str], n_vocab: int, origin: str | os.PathLike,
                          merges: list[tuple[str, str]] | None = None) -> WhisperTokenizer:
    """A WhisperTokenizer from the ordinary byte-level pieces (id order) of any format. Without merges the
    BPE merges by vocabulary rank, which is how tiktoken (and so openai-whisper and whisper.cpp) encodes."""
    vocabulary = whisper_vocabulary(ordinary, n_vocab, origin)
    return WhisperTokenizer(vocabulary, merges, multilingual=n_vocab >= FIRST_MULTILINGUAL_VOCAB)


def read_tiktoken(path: str | os.PathLike) -> list[bytes]:
    """The token bytes of a .tiktoken file (lines "base64 rank"), in rank order; ranks must be 0…N-1."""
    try:
        lines = Path(path).read_bytes().splitlines()
        ranked = {int(rank): base64.b64decode(token)
                  for token, rank in (line.split() for line in lines if line.strip())}
    except (OSError, ValueError, binascii.Error) as err:
        raise BadModelFile(f"{path}: not a readable .tiktoken file ({err})") from None
    if sorted(ranked) != list(range(len(ranked))):
        raise BadModelFile(f"{path}: the token ranks are not 0…{len(ranked) - 1}")
    return [ranked[rank] for rank in range(len(ranked))]


def tokenizer_from_tiktoken(path: str | os.PathLike, n_vocab: int) -> WhisperTokenizer:
    """The tokenizer of a model with n_vocab ids from openai-whisper's gpt2.tiktoken / multilingual.tiktoken."""
    return tokenizer_from_pieces([byte_level(raw) for raw in read_tiktoken(path)], n_vocab, path)


def find_tiktoken_file(n_vocab: int) -> Path | None:
    """The matching .tiktoken file of an installed openai-whisper package (found without importing it)."""
    try:
        spec = importlib.util.find_spec("whisper")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "multilingual.tiktoken" if n_vocab >= FIRST_MULTILINGUAL_VOCAB else "gpt2.tiktoken"
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "assets" / name
        if candidate.is_file():
            return candidate
    return None


# --- the .pt checkpoint ---------------------------------------------------------------------------------------

def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict, loaded without running code; one BadModelFile for anything unreadable."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UnknownModel(f"{path} is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch.load fails in many ways on a broken zip or pickle)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadModelFile(f"{path} is not a readable openai-whisper checkpoint (truncated or corrupt?): "
                           f"{reason[:300]}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("dims"), Mapping) \
            or not isinstance(checkpoint.get("model_state_dict"), Mapping):
        raise BadModelFile(f"{path} is not an openai-whisper checkpoint: it should hold a dict with 'dims' and "
                           f"'model_state_dict'")
    return checkpoint


def alignment_pairs(value: Any, dims: ModelDimensions, origin: str | os.PathLike) -> list[list[int]]:
    """(layer, head) pairs from a list of pairs, a bool [layers, heads] mask (dense or sparse tensor, array),
    or openai-whisper's base85-encoded gzip of that mask."""
    try:
        if isinstance(value, str | bytes):
            mask = np.frombuffer(gzip.decompress(base64.b85decode(value)), dtype=bool)
            value = mask.reshape(dims.n_text_layer, dims.n_text_head)
        if isinstance(value, torch.Tensor):
            value = value.to_dense().cpu().numpy()
        if isinstance(value, np.ndarray) and value.dtype == bool:
            if value.shape != (dims.n_text_layer, dims.n_text_head):
                raise ValueError(f"mask shape {list(value.shape)}")
            return [[int(layer), int(head)] for layer, head in np.argwhere(value)]
        pairs = [[int(layer), int(head)] for layer, head in value]
    except (ValueError, TypeError, OSError, EOFError, zlib.error) as err:
        raise BadModelFile(f"{origin}: the checkpoint's alignment_heads cannot be read ({err})") from None
    return pairs


def read_whisper(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelDimensions, dict[str, Any]]:
    """(openai/whisper state_dict in float32, ModelDimensions, CTranslate2-style config) of a .pt checkpoint."""
    checkpoint = read_checkpoint(path)
    dims = dimensions(checkpoint["dims"], path)
    state: dict[str, torch.Tensor] = {}
    heads = checkpoint.get("alignment_heads")
    for key, value in checkpoint["model_state_dict"].items():
        if key == "alignment_heads":  # a model saved with openai's (non-persistent) buffer made persistent
            heads = value if heads is None else heads
            continue
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise BadModelFile(f"{path}: model_state_dict entry {key!r} is not a float tensor")
        state[str(key)] = value.to(torch.float32).contiguous()
    config = layout_config(dims)
    if heads is not None:
        config["alignment_heads"] = alignment_pairs(heads, dims, path)
    return state, dims, config


def load_whisper(path: str | os.PathLike) -> tuple[Whisper, dict[str, Any]]:
    """A ready Whisper and its config from an openai-whisper .pt checkpoint."""
    state, dims, config = read_whisper(path)
    return build_whisper(state, dims, config, path), config


def load_tokenizer(path: str | os.PathLike, n_vocab: int) -> WhisperTokenizer | None:
    """The tokenizer for a checkpoint: from a .tiktoken file beside it, or from an installed openai-whisper;
    None when neither is there (the checkpoint itself holds no vocabulary)."""
    name = "multilingual.tiktoken" if n_vocab >= FIRST_MULTILINGUAL_VOCAB else "gpt2.tiktoken"
    beside = Path(path).expanduser().parent / name
    source = beside if beside.is_file() else find_tiktoken_file(n_vocab)
    if source is None or language_count(n_vocab) is None:
        return None
    return tokenizer_from_tiktoken(source, n_vocab)
