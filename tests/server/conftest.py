"""A camelid server for the tests: the real app under uvicorn on 127.0.0.1 (a free port), in a thread of the test
process, over an empty model library of its own; the default model comes from its installed package."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from camelid.scheduler import Scheduler
from camelid.server.app import create_app


@dataclass
class LiveServer:
    base: str
    scheduler: Scheduler

    def url(self, path: str) -> str:
        return self.base + path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    saved = {k: os.environ.get(k) for k in ("CAMELID_MODELS", "NO_PROXY", "no_proxy")}
    os.environ["CAMELID_MODELS"] = str(tmp_path_factory.mktemp("server-models"))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    scheduler = Scheduler(num_parallel=4, max_loaded=2, max_queue=64)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(scheduler), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(base, scheduler)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
