"""GGUF reading: metadata and zero-copy tensor views; every malformed file one clear BadModelFile."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from camelid.errors import BadModelFile
from camelid.gguf import GGUFFile


def write_small(path: Path, arch: str = "llama") -> np.ndarray:
    weights = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
    writer.add_tensor("blk.0.w", weights)
    writer.add_tensor("blk.0.n", np.ones(32, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


def test_reads_metadata_and_tensors(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    weights = write_small(path)
    f = GGUFFile(path)
    assert f.architecture == "llama"
    assert f.metadata["general.name"] == "tiny"
    assert f.metadata["llama.block_count"] == 1
    assert f.metadata["tokenizer.ggml.tokens"] == ["a", "b", "c"]
    assert f.metadata["tokenizer.ggml.scores"] == [0.5, -1.0, 2.0]
    info = f.tensors["blk.0.w"]
    assert info.shape == (64, 32)
    view = info.data.view(np.float32).reshape(info.shape)
    assert np.array_equal(view, weights)
    assert isinstance(info.data.base, np.memmap) or np.shares_memory(info.data, f.buf)  # zero-copy view
    assert not info.data.flags.writeable


def test_real_model_header(smollm2_path: Path) -> None:
    f = GGUFFile(smollm2_path)
    assert f.architecture == "llama"
    assert len(f.metadata["tokenizer.ggml.tokens"]) == 49152
    assert f.tensors["token_embd.weight"].shape == (49152, 576)


def corrupt(tmp_path: Path, mutate) -> Path:
    path = tmp_path / "m.gguf"
    write_small(path)
    data = bytearray(path.read_bytes())
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(mutate(data)))
    return bad


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: b"PK\x03\x04" + d[4:], "not a GGUF file"),
    (lambda d: d[:4] + struct.pack("<I", 99) + d[8:], "version 99"),
    (lambda d: d[:8] + struct.pack("<Q", 1 << 40) + d[16:], "claims"),
    (lambda d: d[: len(d) // 2], "truncated"),
    (lambda d: d[:40], "truncated"),
    (lambda d: d[:10], "not a GGUF file"),
    (lambda d: b"", "not a GGUF file"),
])
def test_broken_files_give_one_clear_error(tmp_path: Path, mutate, message: str) -> None:
    with pytest.raises(BadModelFile) as err:
        GGUFFile(corrupt(tmp_path, mutate))
    text = str(err.value)
    assert message in text and "\n" not in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadModelFile, match="no such file"):
        GGUFFile(tmp_path / "absent.gguf")


def test_common_type_sizes_match_the_gguf_package() -> None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    from camelid.gguf.reader import COMMON_TYPE_SIZES
    from camelid.kernels.library import NATIVE_TYPES

    for ggml_type, sizes in COMMON_TYPE_SIZES.items():
        assert GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)] == sizes
    names = {GGMLQuantizationType(t).name for t in NATIVE_TYPES}
    assert names == {"Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K"}
