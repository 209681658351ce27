"""Acceptance check H: each bad input prints one clear line (no traceback) and exits 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest


def camelid(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camelid", *args], check=False, input=stdin, capture_output=True, text=True,
                          timeout=120)


def assert_one_clear_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0]


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("this is a text file, not a model\n" * 10)
    assert_one_clear_error(camelid("run", str(path), "hi"), "not a GGUF file")


def test_truncated_gguf(tmp_path: Path, smollm2_path: Path) -> None:
    path = tmp_path / "half.gguf"
    with smollm2_path.open("rb") as src:
        path.write_bytes(src.read(smollm2_path.stat().st_size // 2))
    assert_one_clear_error(camelid("run", str(path), "hi"), "truncated")


def test_unknown_architecture(tmp_path: Path) -> None:
    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "alienformer")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert_one_clear_error(camelid("run", str(path), "hi"), "alienformer", "not supported")


@pytest.mark.parametrize("name", ["nosuchmodel:7b", "missing/file.gguf"])
def test_unknown_model_name(name: str) -> None:
    assert_one_clear_error(camelid("run", name, "hi"), name)


def test_generate_without_prompt() -> None:
    assert_one_clear_error(camelid("generate", "-m", "smollm2:135m"), "prompt")
