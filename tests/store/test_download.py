"""Downloads against a real HTTP server on 127.0.0.1: resume, retries, verification, and hf.co resolution."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections import namedtuple
from pathlib import Path
from typing import Any

import gguf
import httpx
import numpy as np
import pytest

from camelid.gguf import GGUFFile
from camelid.store.download import DownloadError, download, sidecar_path
from camelid.store.huggingface import RemoteFile, parse_hf_reference, resolve_hf

FileServer = Any  # tests/store/conftest.py: the local HTTP server of the `http_server` fixture

DATA = random.Random(1234).randbytes(3 * 2**20)
ETAG = '"v1"'
PATH = "/files/model.bin"


@pytest.fixture
def server(http_server: FileServer) -> FileServer:
    http_server.files[PATH] = (DATA, ETAG)
    return http_server


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- download ---------------------------------------------------------------------------------------------------


def test_plain_download_returns_sha256(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "blobs" / "sha256-x-partial"
    digest = download(server.url(PATH), partial, expected_sha256=sha(DATA), expected_size=len(DATA), backoff=0.01)
    assert digest == sha(DATA)
    assert partial.read_bytes() == DATA  # left in place: renaming is the caller's job
    assert not sidecar_path(partial).exists()
    [seen] = server.seen
    assert "range" not in seen.headers
    assert seen.headers["user-agent"].startswith("camelid/")


def test_dropped_connection_resumes_in_the_same_call(server: FileServer, tmp_path: Path) -> None:
    half = len(DATA) // 2
    server.faults = [("drop", half)]
    partial = tmp_path / "partial"
    digest = download(server.url(PATH), partial, retries=3, backoff=0.01)
    assert digest == sha(DATA)
    assert partial.read_bytes() == DATA
    first, second = server.seen
    assert first.status == 200 and first.body_bytes == half
    assert second.headers["range"] == f"bytes={half}-"
    assert second.headers["if-range"] == ETAG
    assert second.status == 206 and second.body_bytes == len(DATA) - half


def test_second_call_resumes_an_existing_partial(server: FileServer, tmp_path: Path) -> None:
    server.faults = [("drop", 1_000_000)]
    partial = tmp_path / "partial"
    with pytest.raises(DownloadError, match=r"1000000 of 3145728 bytes fetched .*run the pull again to resume"):
        download(server.url(PATH), partial, retries=0, backoff=0.01)
    assert partial.stat().st_size == 1_000_000
    saved = json.loads(sidecar_path(partial).read_text())
    assert saved == {"url": server.url(PATH), "validator": ETAG, "size": len(DATA)}

    calls: list[tuple[int, int | None]] = []
    digest = download(server.url(PATH), partial, progress=lambda done, total: calls.append((done, total)),
                      retries=0, backoff=0.01)
    assert digest == sha(DATA)  # the hash covers the bytes from the first call too
    resumed = server.seen[-1]
    assert resumed.headers["range"] == "bytes=1000000-"
    assert resumed.status == 206 and resumed.body_bytes == len(DATA) - 1_000_000 < len(DATA)
    assert calls[0] == (1_000_000, len(DATA))  # progress counts the resumed bytes
    assert calls[-1] == (len(DATA), len(DATA))
    assert not sidecar_path(partial).exists()


def test_changed_etag_restarts_from_zero(server: FileServer, tmp_path: Path) -> None:
    server.faults = [("drop", 1_000_000)]
    partial = tmp_path / "partial"
    with pytest.raises(DownloadError):
        download(server.url(PATH), partial, retries=0, backoff=0.01)
    new = random.Random(99).randbytes(len(DATA) - 12345)
    server.files[PATH] = (new, '"v2"')
    digest = download(server.url(PATH), partial, retries=0, backoff=0.01)
    assert digest == sha(new)
    assert partial.read_bytes() == new
    last = server.seen[-1]
    assert last.headers["if-range"] == ETAG  # the old validator: the server answers with the whole new file
    assert last.status == 200 and last.body_bytes == len(new)


def test_partial_without_sidecar(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.write_bytes(b"junk" * 250)
    # Nothing says which file those bytes came from: start over.
    assert download(server.url(PATH), partial, backoff=0.01) == sha(DATA)
    assert "range" not in server.seen[-1].headers
    # With an expected sha256 the final check guards the result, so the bytes on disk are kept.
    partial.write_bytes(DATA[:5000])
    assert download(server.url(PATH), partial, expected_sha256=sha(DATA), backoff=0.01) == sha(DATA)
    assert server.seen[-1].headers["range"] == "bytes=5000-"
    assert "if-range" not in server.seen[-1].headers


def test_no_validator_restarts_and_still_gives_up(server: FileServer, tmp_path: Path) -> None:
    server.files[PATH] = (DATA, "")  # no ETag, no Last-Modified: a retry cannot resume safely
    server.faults = [("drop", 1000)] * 10
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download(server.url(PATH), tmp_path / "partial", retries=2, backoff=0.01)
    assert len(server.seen) == 3  # restarting from zero each time is not progress that resets the count
    assert all("range" not in s.headers for s in server.seen)


def test_complete_partial_is_answered_416(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.write_bytes(DATA)
    sidecar_path(partial).write_text(json.dumps({"url": server.url(PATH), "validator": ETAG, "size": len(DATA)}))
    assert download(server.url(PATH), partial, expected_size=len(DATA), backoff=0.01) == sha(DATA)
    [seen] = server.seen
    assert seen.headers["range"] == f"bytes={len(DATA)}-"
    assert seen.status == 416 and seen.body_bytes == 0
    assert not sidecar_path(partial).exists()


def test_read_timeout_retries_with_the_callers_client(server: FileServer, tmp_path: Path) -> None:
    server.faults = [("stall", 200_000, 1.0)]
    with httpx.Client(timeout=httpx.Timeout(0.2)) as client:
        digest = download(server.url(PATH), tmp_path / "partial", retries=1, backoff=0.01, client=client)
    assert digest == sha(DATA)
    assert server.seen[-1].headers["range"] == "bytes=200000-"


def test_503_twice_then_success(server: FileServer, tmp_path: Path) -> None:
    server.faults = [("status", 503), ("status", 503)]
    assert download(server.url(PATH), tmp_path / "partial", retries=3, backoff=0.01) == sha(DATA)
    assert [s.status for s in server.seen] == [503, 503, 200]


def test_429_honours_a_small_retry_after(server: FileServer, tmp_path: Path) -> None:
    server.faults = [("status", 429, {"Retry-After": "0"})]
    assert download(server.url(PATH), tmp_path / "partial", retries=1, backoff=0.01) == sha(DATA)
    assert [s.status for s in server.seen] == [429, 200]


def test_retries_exhausted(server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.faults = [("status", 500)] * 10
    monkeypatch.setenv("CAMELID_PULL_RETRIES", "2")  # the default for `retries`
    with pytest.raises(DownloadError, match=r"after 3 attempts \(HTTP 500 .*\): 0 bytes fetched"):
        download(server.url(PATH), tmp_path / "partial", backoff=0.01)
    assert len(server.seen) == 3


def test_404_fails_at_once(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    url = server.url("/files/missing.bin")
    with pytest.raises(DownloadError) as err:
        download(url, partial, retries=5, backoff=0.01)
    assert str(err.value) == f"download of {url} failed: HTTP 404 Not Found"
    assert len(server.seen) == 1
    assert not partial.exists()


def test_sha256_mismatch_deletes_the_partial(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    with pytest.raises(DownloadError, match=f"sha256 mismatch: expected {'0' * 64}, got {sha(DATA)}"):
        download(server.url(PATH), partial, expected_sha256="0" * 64, backoff=0.01)
    assert not partial.exists()
    assert not sidecar_path(partial).exists()


def test_size_mismatch_deletes_the_partial(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    with pytest.raises(DownloadError, match="size mismatch"):
        download(server.url(PATH), partial, expected_size=len(DATA) + 1, backoff=0.01)
    assert not partial.exists()
    assert not sidecar_path(partial).exists()


def test_progress_ends_at_total(server: FileServer, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    download(server.url(PATH), tmp_path / "partial", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(DATA), len(DATA))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert all(total == len(DATA) for _, total in calls)
    assert len(calls) < 50  # throttled, not one call per network read


def test_too_little_free_space_fails_before_downloading(server: FileServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    partial = tmp_path / "partial"
    with pytest.raises(DownloadError, match=f"not enough disk space .*: 0 bytes written, {len(DATA)} more needed"):
        download(server.url(PATH), partial, expected_size=len(DATA), backoff=0.01)
    assert server.seen == []  # known size: no request at all
    with pytest.raises(DownloadError, match="not enough disk space"):
        download(server.url(PATH), partial, backoff=0.01)  # size learnt from the response headers
    assert len(server.seen) == 1 and not partial.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fail writes with ENOSPC")
def test_disk_full_while_writing(server: FileServer, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    with pytest.raises(DownloadError, match=f"not enough disk space .*: 0 bytes written, {len(DATA)} more needed"):
        download(server.url(PATH), partial, retries=3, backoff=0.01)
    assert len(server.seen) == 1  # a full disk is not retried


# --- hf.co ------------------------------------------------------------------------------------------------------


def small_gguf(path: Path) -> bytes:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_string("general.name", "tiny")
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(32, dtype=np.float32))
    writer.add_tensor("token_embd.weight", np.arange(8 * 32, dtype=np.float32).reshape(8, 32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def lfs_entry(path: str, data: bytes) -> dict:
    return {"type": "file", "oid": "0" * 40, "path": path, "size": len(data),
            "lfs": {"oid": sha(data), "size": len(data), "pointerSize": 134}}


def add_repo(server: FileServer, repo: str, files: dict[str, bytes], extra: list[dict] | None = None) -> None:
    """A Hub-like repository: the tree listing, and resolve URLs that redirect to a CDN path."""
    listing = [{"type": "directory", "oid": "1" * 40, "path": "sub", "size": 0}]
    listing += [{"type": "file", "oid": "2" * 40, "path": "README.md", "size": 10}] + (extra or [])
    for path, data in files.items():
        listing.append(lfs_entry(path, data))
        cdn = f"/cdn/{sha(data)}"
        server.files[cdn] = (data, f'"{sha(data)}"')
        server.redirects[f"/{repo}/resolve/main/{path}"] = server.url(cdn)
    server.json[f"/api/models/{repo}/tree/main?recursive=true"] = (listing, {})


@pytest.fixture
def hub(server: FileServer, tmp_path: Path) -> FileServer:
    model = small_gguf(tmp_path / "tiny.gguf")
    add_repo(server, "acme/tiny-GGUF", {
        "tiny-Q4_K_M.gguf": model,
        "tiny-Q4_K.gguf": b"q4_k",
        "quants/tiny-Q8_0.gguf": b"q8_0",
        "mmproj-tiny-Q4_K_M.gguf": b"vision projector",
        "tiny-Q6_K-00001-of-00002.gguf": b"part 1",
        "tiny-Q6_K-00002-of-00002.gguf": b"part 2",
    })
    add_repo(server, "acme/two", {"two.Q8_0.gguf": b"a", "two.F16.gguf": b"b", "two.safetensors": b"c"})
    add_repo(server, "acme/one", {"one-IQ3_XXS.gguf": b"one"})
    add_repo(server, "acme/split", {f"big-Q4_K_M-0000{i}-of-00003.gguf": b"x" for i in (1, 2, 3)})
    add_repo(server, "acme/weights", {"model.safetensors": b"w"})
    return server


def test_resolve_hf_default_quant_and_download(hub: FileServer, tmp_path: Path) -> None:
    remote = resolve_hf("hf.co/acme/tiny-GGUF", endpoint=hub.base)
    model = hub.files[f"/cdn/{remote.sha256}"][0]
    assert remote == RemoteFile(url=hub.url("/acme/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf"),
                                filename="tiny-Q4_K_M.gguf", size=len(model), sha256=sha(model))
    # The resolve URL redirects to the CDN; a drop there resumes with a Range request after the redirect.
    hub.faults = [("drop", 100)]
    partial = tmp_path / "blobs" / f"sha256-{remote.sha256}-partial"
    assert download(remote.url, partial, expected_sha256=remote.sha256, expected_size=remote.size,
                    retries=2, backoff=0.01) == remote.sha256
    assert hub.requests_for(f"/cdn/{remote.sha256}")[-1].headers["range"] == "bytes=100-"
    f = GGUFFile(partial)  # a real model file came through
    assert f.architecture == "llama" and f.metadata["general.name"] == "tiny"
    assert f.tensors["token_embd.weight"].shape == (8, 32)


def test_resolve_hf_by_quant(hub: FileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.base + "/")  # the default endpoint
    assert resolve_hf("hf.co/acme/tiny-GGUF:q4_k").filename == "tiny-Q4_K.gguf"  # not Q4_K_M
    q8 = resolve_hf("huggingface.co/acme/tiny-GGUF:Q8_0")
    assert q8.url == hub.url("/acme/tiny-GGUF/resolve/main/quants/tiny-Q8_0.gguf")
    assert q8.filename == "tiny-Q8_0.gguf" and q8.size == 4 and q8.sha256 == sha(b"q8_0")
    assert resolve_hf("https://huggingface.co/acme/tiny-GGUF:latest").filename == "tiny-Q4_K_M.gguf"
    assert resolve_hf("hf.co/acme/one").filename == "one-IQ3_XXS.gguf"  # the only GGUF


def test_resolve_hf_errors(hub: FileServer) -> None:
    with pytest.raises(DownloadError, match=r"several GGUF files and none is Q4_K_M: .*one of: F16, Q8_0$"):
        resolve_hf("hf.co/acme/two", endpoint=hub.base)
    with pytest.raises(DownloadError, match=r"no Q2_K GGUF file; available quantizations: Q4_K, Q4_K_M, Q8_0 "
                                            r"\(split, not supported yet: Q6_K\)"):
        resolve_hf("hf.co/acme/tiny-GGUF:Q2_K", endpoint=hub.base)
    with pytest.raises(DownloadError, match="split GGUF files are not supported yet"):
        resolve_hf("hf.co/acme/tiny-GGUF:Q6_K", endpoint=hub.base)
    with pytest.raises(DownloadError, match="split GGUF files are not supported yet"):
        resolve_hf("hf.co/acme/split", endpoint=hub.base)
    with pytest.raises(DownloadError, match="has no GGUF file"):
        resolve_hf("hf.co/acme/weights", endpoint=hub.base)
    with pytest.raises(DownloadError, match=r"repository acme/nothing-here not found .*HTTP 404"):
        resolve_hf("hf.co/acme/nothing-here", endpoint=hub.base)


@pytest.mark.parametrize("reference", ["hf.co/acme", "hf.co/acme/repo/extra", "hf.co/../repo", "hf.co/a..b/repo",
                                       "hf.co/-acme/repo", "hf.co/acme/re po", "ollama.com/acme/repo",
                                       "hf.co/acme/repo:Q4/../x"])
def test_bad_references_are_refused_without_a_request(reference: str, server: FileServer) -> None:
    with pytest.raises(DownloadError, match="not a valid|not a Hugging Face reference"):
        resolve_hf(reference, endpoint=server.base)
    assert server.seen == []


def test_parse_hf_reference() -> None:
    assert parse_hf_reference("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M") == (
        "bartowski", "Llama-3.2-1B-Instruct-GGUF", "Q4_K_M")
    assert parse_hf_reference("huggingface.co/org/repo") == ("org", "repo", None)


def test_tree_listing_follows_pagination(server: FileServer) -> None:
    add_repo(server, "acme/paged", {"paged-Q8_0.gguf": b"p"})
    key = "/api/models/acme/paged/tree/main?recursive=true"
    second_page, _ = server.json[key]
    server.json[key] = ([], {"Link": f'<{server.url("/api/models/acme/paged/tree/main?cursor=2")}>; rel="next"'})
    server.json["/api/models/acme/paged/tree/main?cursor=2"] = (second_page, {})
    assert resolve_hf("hf.co/acme/paged", endpoint=server.base).filename == "paged-Q8_0.gguf"
