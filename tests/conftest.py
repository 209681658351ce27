"""Shared fixtures: the packaged models and the golden references from ../shared/golden."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "golden"
GOLDEN_FILES = {
    "smollm2:135m": "smollm2-135m-q4_1.llamacpp.json",
    "gemma3:270m": "gemma-3-270m-q4_k_m.llamacpp.json",
}


def load_golden(model: str) -> dict:
    path = GOLDEN_DIR / GOLDEN_FILES[model]
    if not path.is_file():
        pytest.fail(f"golden file {path} is missing: the tests need ../shared/golden beside the checkout")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def golden():
    """golden(model_name) -> the llama.cpp reference data for that model."""
    return load_golden


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from camelid.store import resolve_model

    return resolve_model("smollm2:135m")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    from camelid.store import resolve_model

    return resolve_model("gemma3:270m")
