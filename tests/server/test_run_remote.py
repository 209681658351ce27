"""`camelid run` talks to a running server at CAMELID_HOST, and runs in-process otherwise (or with --local)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.slow
MODEL = "smollm2:135m"
Server = Any  # tests/server/conftest.py: LiveServer


def run(*args: str, host: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CAMELID_HOST=host, NO_PROXY="127.0.0.1")
    return subprocess.run([sys.executable, "-m", "camelid", "run", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def served_tokens(live_server: Server) -> int:
    return sum(r.tokens_generated for r in live_server.scheduler.runners.values()) + \
        int(live_server.scheduler.totals["tokens_generated"])


def test_run_uses_the_server(live_server: Server) -> None:
    host = live_server.base.removeprefix("http://")
    before = served_tokens(live_server)
    result = run(MODEL, "Say hello.", "--num-predict", "8", "--temperature", "0", "--verbose", host=host)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "eval rate:" in result.stderr
    assert served_tokens(live_server) > before  # the tokens came from the server
    local = run(MODEL, "Say hello.", "--num-predict", "4", "--local", host=host)
    assert local.returncode == 0 and local.stdout.strip()
    missing = run("no-such-model:1b", "hi", host=host)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1].startswith("Error: cannot pull")
