"""Load a Whisper model from whatever a path holds: the format is chosen by the files and magic bytes found.

    a folder with model.bin (or that model.bin), or a model-library entry (`.files`)  -> CTranslate2
    a folder with model.safetensors / model.safetensors.index.json / pytorch_model.bin + config.json
        (or one of those files)                                                       -> Hugging Face
    a .pt / .pth file                                                                 -> openai-whisper
    a file that starts with the GGML magic, or is named ggml-*.bin                    -> whisper.cpp
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from camelid.errors import UnknownModel, UnsupportedModel
from camelid.speech.loaders import ct2, ggml, hf, openai
from camelid.speech.model import Whisper
from camelid.speech.tokenizer import WhisperTokenizer

FORMATS = {
    "ct2": "a CTranslate2 folder (model.bin, config.json, vocabulary.txt/json)",
    "hf": "a Hugging Face folder (config.json + model.safetensors, sharded safetensors or pytorch_model.bin)",
    "openai": "an openai-whisper checkpoint (.pt)",
    "ggml": "a whisper.cpp GGML file (ggml-*.bin)",
}
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def _unsupported(what: str) -> UnsupportedModel:
    accepted = "; ".join(FORMATS.values())
    return UnsupportedModel(f"{what} is not a Whisper model camelid can read. Accepted: {accepted}")


def _folder_format(names: set[str], what: str) -> str:
    if "model.bin" in names:
        return "ct2"
    if "config.json" in names and names & set(HF_WEIGHTS):
        return "hf"
    listing = ", ".join(sorted(names)[:12]) or "no files"
    raise _unsupported(f"{what} (holding {listing})")


def detect_format(source: str | os.PathLike | Mapping[str, Any] | Any) -> str:
    """"ct2", "hf", "openai" or "ggml" for what `source` holds; UnknownModel for a path that does not exist,
    UnsupportedModel (listing the accepted formats) for anything else."""
    files = getattr(source, "files", None)
    if isinstance(files, Mapping) or isinstance(source, Mapping):
        names = set(map(str, (files if isinstance(files, Mapping) else source)))
        return "hf" if "model.bin" not in names and "config.json" in names and names & set(HF_WEIGHTS) \
            else "ct2"  # the model library's speech models are CTranslate2 folders
    path = Path(source).expanduser()
    if path.is_dir():
        return _folder_format({entry.name for entry in path.iterdir() if entry.is_file()}, str(path))
    if not path.is_file():
        raise UnknownModel(f"{path}: no such file or folder")
    if ggml.is_ggml(path) or (path.name.startswith("ggml-") and path.suffix == ".bin"):
        return "ggml"  # by name too, so that a damaged ggml-*.bin gets the GGML reader's message
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return "openai"
    if path.name == "model.bin" or path.name in HF_WEIGHTS or path.name == "config.json":
        return _folder_format({entry.name for entry in path.parent.iterdir() if entry.is_file()}, str(path))
    raise _unsupported(str(path))


def load_any(source: str | os.PathLike | Mapping[str, Any] | Any
             ) -> tuple[Whisper, dict[str, Any], WhisperTokenizer | None]:
    """(ready Whisper, CTranslate2-style config, tokenizer or None) from any supported format.

    The tokenizer is None when the model carries no vocabulary: a CTranslate2 folder without vocabulary.txt
    or .json, a Hugging Face folder without tokenizer.json or vocab.json, an openai checkpoint with no
    .tiktoken file beside it and no openai-whisper installed, or an n_vocab outside openai's token layout."""
    kind = detect_format(source)
    if kind == "ct2":
        model, config = ct2.load_whisper(source)
        files = ct2.model_files(source)
        has_vocabulary = "vocabulary.txt" in files or "vocabulary.json" in files
        tokenizer = WhisperTokenizer.from_files(files) if has_vocabulary else None
        return model, config, tokenizer
    if kind == "hf":
        model, config = hf.load_whisper(source)
        return model, config, hf.load_tokenizer(source, model.dims.n_vocab)
    path = Path(source).expanduser()
    if kind == "openai":
        model, config = openai.load_whisper(path)
        return model, config, openai.load_tokenizer(path, model.dims.n_vocab)
    model, config = ggml.load_whisper(path)
    return model, config, ggml.load_tokenizer(path)
