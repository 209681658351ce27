"""Fixtures for the tokenizer tests: GGUF metadata of the two packaged models and tokenizers built from it.

Metadata comes from `camelid.gguf.GGUFFile` (plain dict: strings as str, arrays as lists), the same input the
engine passes to `Tokenizer.from_metadata`; `test_vocab.py` cross-checks it against `gguf.GGUFReader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from camelid.tokenizer import Tokenizer

MODELS = ["smollm2:135m", "gemma3:270m"]


@pytest.fixture(scope="session")
def model_path(smollm2_path: Path, gemma3_path: Path):
    """model_path(name) -> the GGUF file of a packaged model."""
    paths = {"smollm2:135m": smollm2_path, "gemma3:270m": gemma3_path}
    return paths.__getitem__


_METADATA: dict[Path, dict[str, Any]] = {}


def read_metadata(path: Path) -> dict[str, Any]:
    from camelid.gguf import GGUFFile

    if path not in _METADATA:
        _METADATA[path] = GGUFFile(path).metadata
    return _METADATA[path]


@pytest.fixture(scope="session")
def smollm2_md(smollm2_path: Path) -> dict[str, Any]:
    return read_metadata(smollm2_path)


@pytest.fixture(scope="session")
def gemma3_md(gemma3_path: Path) -> dict[str, Any]:
    return read_metadata(gemma3_path)


@pytest.fixture(scope="session")
def smollm2_tok(smollm2_md: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_metadata(smollm2_md)


@pytest.fixture(scope="session")
def gemma3_tok(gemma3_md: dict[str, Any]) -> Tokenizer:
    return Tokenizer.from_metadata(gemma3_md)


@pytest.fixture(scope="session")
def tokenizer(smollm2_tok: Tokenizer, gemma3_tok: Tokenizer):
    """tokenizer(model_name) -> Tokenizer."""
    return {"smollm2:135m": smollm2_tok, "gemma3:270m": gemma3_tok}.__getitem__
