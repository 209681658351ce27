"""Fixtures for the model library: an empty store of its own per test, small GGUF files written here, and a
real HTTP server on 127.0.0.1 with Range/If-Range/ETag support and injectable faults."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# --- a local HTTP server ---------------------------------------------------------------------------------

@dataclass
class Seen:
    """One request as the server saw it, and what it answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    status: int = 0
    body_bytes: int = 0  # body bytes actually written to the socket


@dataclass
class FileServer:
    """Serves `files` (path -> (bytes, ETag or "" for none)) with Range/If-Range, JSON documents and redirects.

    `faults` applies to the next requests for files, one each: ("status", code, headers) answers that status,
    ("drop", n) sends the headers of the full answer, then only n body bytes, then closes the connection;
    ("stall", n, seconds) sends n body bytes, then waits and closes.
    """

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    json: dict[str, tuple[object, dict[str, str]]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    faults: list[tuple] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""
    throttle: float = 0.0  # seconds of sleep after each 64 KiB of a file body (a slow link)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, seen: Seen, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        seen.status = status
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        seen.body_bytes = len(body)

    def do_GET(self) -> None:
        fs = self.server.fs
        seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()})
        with fs.lock:
            fs.seen.append(seen)
        if self.path in fs.json:
            document, extra = fs.json[self.path]
            return self._answer(seen, 200, json.dumps(document).encode(),
                                {"Content-Type": "application/json", **extra})
        if self.path in fs.redirects:
            return self._answer(seen, 302, b"", {"Location": fs.redirects[self.path]})
        if self.path not in fs.files:
            return self._answer(seen, 404, b"not found")
        with fs.lock:
            fault = fs.faults.pop(0) if fs.faults else None
        if fault and fault[0] == "status":
            return self._answer(seen, fault[1], b"try later", fault[2] if len(fault) > 2 else {})

        body, etag = fs.files[self.path]
        status, start = 200, 0
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and (if_range is None or if_range == etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
            if start >= len(body):
                return self._answer(seen, 416, b"", {"Content-Range": f"bytes */{len(body)}", "ETag": etag})
            status = 206
        payload = body[start:]
        seen.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        if etag:
            self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if fault and fault[0] == "drop":
            payload = payload[: fault[1]]
            self.close_connection = True  # the handler returns and the server closes the socket mid-body
        if fault and fault[0] == "stall":  # send n bytes, then nothing for a while
            self.close_connection = True
            self.wfile.write(payload[: fault[1]])
            seen.body_bytes = fault[1]
            time.sleep(fault[2])
            return
        if fs.throttle:
            for offset in range(0, len(payload), 1 << 16):
                self.wfile.write(payload[offset:offset + (1 << 16)])
                self.wfile.flush()
                seen.body_bytes = offset + min(1 << 16, len(payload) - offset)
                time.sleep(fs.throttle)
            return
        self.wfile.write(payload)
        self.wfile.flush()
        seen.body_bytes = len(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fs: FileServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up early is part of these tests, not an error to print


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; these tests talk to 127.0.0.1 directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def http_server() -> Iterator[FileServer]:
    """A real HTTP server on 127.0.0.1 (port chosen by the OS) serving what the test puts in it."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    fs = FileServer(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.fs = fs
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fs
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
