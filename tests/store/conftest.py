"""Fixtures for the model library: an empty store of its own per test, and small GGUF files written here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np
import pytest

from camelid.store.blobs import ModelStore


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    root = tmp_path / "models"
    monkeypatch.setenv("CAMELID_MODELS", str(root))
    monkeypatch.setenv("CAMELID_HOME", str(tmp_path / "home"))
    return ModelStore(root)


def write_gguf(path: Path, seed: int = 0, n_values: int = 4096) -> Path:
    """A small but valid GGUF: llama metadata and one float32 tensor of random values."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_block_count(1)
    writer.add_file_type(0)
    writer.add_tensor("token_embd.weight", np.random.default_rng(seed).standard_normal(n_values).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def tiny_gguf(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "tiny.gguf", seed: int = 0, n_values: int = 4096) -> Path:
        return write_gguf(tmp_path / name, seed, n_values)

    return make
