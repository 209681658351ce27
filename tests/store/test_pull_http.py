"""Pulls over HTTP from a server the test runs on 127.0.0.1: a URL, hf.co, a dropped connection, and a pull killed
with SIGKILL mid-transfer."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from camelid.errors import CamelidError
from camelid.store.blobs import ModelStore
from camelid.store.names import ModelName
from camelid.store.pull import PullEvent, pull
from camelid.store.resolve import resolve

FileServer = Any  # tests/store/conftest.py


def serve_gguf(server: FileServer, tiny_gguf, path: str = "/models/tiny.gguf", n_values: int = 4096) -> bytes:
    data = tiny_gguf(n_values=n_values).read_bytes()
    server.files[path] = (data, '"etag-1"')
    return data


def test_pull_url_with_a_dropped_connection(store: ModelStore, http_server: FileServer, tiny_gguf) -> None:
    data = serve_gguf(http_server, tiny_gguf, n_values=200_000)
    http_server.faults = [("drop", len(data) // 3)]
    digest = hashlib.sha256(data).hexdigest()
    events: list[PullEvent] = []
    name = pull(http_server.url(f"/models/tiny.gguf#sha256={digest}"), store, events.append)
    assert str(name) == "tiny:latest"
    ranges = [seen.headers.get("range") for seen in http_server.requests_for("/models/tiny.gguf")]
    assert ranges == [None, f"bytes={len(data) // 3}-"]  # resumed where the connection dropped
    assert store.blob_path("sha256:" + digest).read_bytes() == data
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-2:] == ["writing manifest", "success"]
    assert any(e.completed == e.total == len(data) for e in events if e.digest)
    assert resolve("tiny", store).path == store.blob_path("sha256:" + digest)


def test_pull_url_rejects_a_wrong_digest_and_non_gguf(store: ModelStore, http_server: FileServer, tiny_gguf) -> None:
    serve_gguf(http_server, tiny_gguf)
    with pytest.raises(CamelidError, match="sha256 mismatch"):
        pull(http_server.url("/models/tiny.gguf#sha256=" + "0" * 64), store)
    http_server.files["/models/page.gguf"] = (b"<html>not a model</html>", "")
    with pytest.raises(CamelidError, match="not a usable GGUF"):
        pull(http_server.url("/models/page.gguf"), store)
    assert store.entries() == [] and not list(store.blobs.glob("sha256-*"))


def test_pull_from_hugging_face(store: ModelStore, http_server: FileServer, tiny_gguf,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    models = {q: tiny_gguf(f"m-{q}.gguf", seed=i).read_bytes() for i, q in enumerate(("Q4_K_M", "Q8_0"))}
    listing = []
    for quant, data in models.items():
        sha = hashlib.sha256(data).hexdigest()
        listing.append({"type": "file", "path": f"tiny-{quant}.gguf", "size": len(data),
                        "lfs": {"oid": sha, "size": len(data)}})
        http_server.files[f"/acme/tiny-GGUF/resolve/main/tiny-{quant}.gguf"] = (data, f'"{sha}"')
    http_server.json["/api/models/acme/tiny-GGUF/tree/main?recursive=true"] = (listing, {})
    monkeypatch.setenv("HF_ENDPOINT", http_server.base)
    name = pull("hf.co/acme/tiny-GGUF:Q8_0", store)
    assert name == ModelName("hf.co", "acme", "tiny-GGUF", "Q8_0")
    assert resolve("hf.co/acme/tiny-GGUF:Q8_0", store).path.read_bytes() == models["Q8_0"]
    assert str(pull("hf.co/acme/tiny-GGUF", store)) == "hf.co/acme/tiny-GGUF:latest"  # Q4_K_M by default
    assert resolve("hf.co/acme/tiny-GGUF", store).path.read_bytes() == models["Q4_K_M"]


def camelid(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camelid", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_pull_killed_mid_transfer_then_resumed(store: ModelStore, http_server: FileServer, tiny_gguf) -> None:
    data = serve_gguf(http_server, tiny_gguf, n_values=1_000_000)  # 4 MB at ~1.3 MB/s: about 3 s
    digest = hashlib.sha256(data).hexdigest()
    url = http_server.url(f"/models/tiny.gguf#sha256={digest}")
    env = dict(os.environ, CAMELID_MODELS=str(store.root), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    http_server.throttle = 0.05
    proc = subprocess.Popen([sys.executable, "-m", "camelid", "pull", url, "--name", "killed"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = store.partial_path("sha256:" + digest)
    deadline = time.monotonic() + 60
    while not (partial.is_file() and partial.stat().st_size > len(data) // 4):
        assert proc.poll() is None, "the pull ended before it could be killed"
        assert time.monotonic() < deadline, "the pull never started writing"
        listed = camelid("list", env=env)
        assert "killed" not in listed.stdout  # never listed while under way
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    kept = partial.stat().st_size
    assert 0 < kept < len(data)
    listed = camelid("list", env=env)
    assert listed.returncode == 0 and "killed" not in listed.stdout  # the half model is not listed
    assert not store.blob_path("sha256:" + digest).exists()

    http_server.throttle = 0.0
    again = camelid("pull", url, "--name", "killed", env=env)
    assert again.returncode == 0, again.stderr
    last = http_server.requests_for("/models/tiny.gguf")[-1]
    assert last.headers.get("range", "").startswith("bytes=") and last.status == 206
    assert int(last.headers["range"][6:-1]) >= kept  # resumed, not restarted
    blob = store.blob_path("sha256:" + digest)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    assert not partial.exists()
    assert camelid("list", env=env).stdout.split("\n")[1].split()[0] == "killed:latest"
