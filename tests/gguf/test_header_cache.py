"""The parsed-header cache (camelid/gguf/header_cache.py): used when the file is unchanged, never when it changed,
and harmless when broken or turned off."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

from camelid.gguf import GGUFFile, header_cache


def write_vocab_file(path: Path, n_tokens: int, marker: str) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(marker)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(n_tokens)])
    writer.add_tensor("w", np.arange(64, dtype=np.float32).reshape(2, 32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CAMELID_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CAMELID_GGUF_CACHE", raising=False)
    return tmp_path / "home"


def entries(home: Path) -> list[Path]:
    return sorted((home / "cache" / "gguf").glob("*.marshal")) if (home / "cache" / "gguf").is_dir() else []


def refuse_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("the header was parsed instead of read from the cache")

    monkeypatch.setattr(GGUFFile, "_read_header", staticmethod(fail))


def test_second_open_reads_the_cache(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_vocab_file(tmp_path / "m.gguf", 1500, "first")
    first = GGUFFile(path)
    assert len(entries(home)) == 1
    refuse_parsing(monkeypatch)
    second = GGUFFile(path)
    assert second.metadata == first.metadata and second.get("general.name") == "first"
    assert second.data_offset == first.data_offset
    assert np.array_equal(second.tensors["w"].data, first.tensors["w"].data)


def test_a_changed_file_is_parsed_again(tmp_path: Path, home: Path) -> None:
    path = write_vocab_file(tmp_path / "m.gguf", 1500, "first")
    GGUFFile(path)
    write_vocab_file(tmp_path / "other.gguf", 1600, "second")
    os.replace(tmp_path / "other.gguf", path)  # another file under the same name
    reopened = GGUFFile(path)
    assert reopened.get("general.name") == "second"
    assert len(reopened.get("tokenizer.ggml.tokens")) == 1600
    assert len(entries(home)) == 1  # the replaced file's entry is gone
    write_vocab_file(tmp_path / "n.gguf", 1500, "n")
    GGUFFile(tmp_path / "n.gguf")
    assert len(entries(home)) == 2  # other paths keep theirs
    assert GGUFFile(path).get("general.name") == "second"


def test_small_headers_broken_entries_and_the_switch(tmp_path: Path, home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    small = write_vocab_file(tmp_path / "small.gguf", 10, "small")
    GGUFFile(small)
    assert entries(home) == []  # not worth an entry
    path = write_vocab_file(tmp_path / "m.gguf", 1500, "first")
    GGUFFile(path)
    (entry,) = entries(home)
    entry.write_bytes(b"\x00garbage")
    assert GGUFFile(path).get("general.name") == "first"  # parsed again, and the entry rewritten
    assert header_cache.load(path) is not None
    monkeypatch.setenv("CAMELID_GGUF_CACHE", "0")
    assert header_cache.load(path) is None
    other = write_vocab_file(tmp_path / "n.gguf", 1500, "n")
    GGUFFile(other)
    assert len(entries(home)) == 1
