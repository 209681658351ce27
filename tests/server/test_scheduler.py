"""The scheduler: continuous batching, cancellation within one decode step, the queue bound, keep_alive."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import httpx
import pytest

import camelid
from camelid.engine.sequence import Done, GenerationState, Piece
from camelid.errors import BadRequest
from camelid.scheduler import QueueFull, Runner, Scheduler, parse_keep_alive
from camelid.server.errors import error_status

pytestmark = pytest.mark.slow
MODEL = "smollm2:135m"
Server = Any  # tests/server/conftest.py: LiveServer


@pytest.fixture(scope="module")
def runner() -> Runner:
    llm = camelid.load(MODEL, n_slots=4, num_ctx=512)
    runner = Runner("test", llm, keep_alive=60)
    yield runner
    runner.stop()


class Collector:
    """Events of one sequence, gathered on the runner thread."""

    def __init__(self, runner: Runner, cancel_after: int | None = None) -> None:
        self.runner, self.cancel_after = runner, cancel_after
        self.pieces: list[Piece] = []
        self.done = threading.Event()
        self.cancelled_at_step: int | None = None
        self.state: GenerationState | None = None

    def __call__(self, events: list) -> None:
        for event in events:
            if isinstance(event, Piece) and event.token is not None:
                self.pieces.append(event)
            if isinstance(event, Done):
                self.done.set()
        if self.cancel_after is not None and len(self.pieces) >= self.cancel_after and self.cancelled_at_step is None:
            self.cancelled_at_step = self.runner.steps
            self.state.cancelled = True  # what the server does when the client goes away


def submit(runner: Runner, prompt: str, num_predict: int, cancel_after: int | None = None) -> Collector:
    llm = runner.llm
    options = llm.options.merged({"num_predict": num_predict, "temperature": 0})
    collector = Collector(runner, cancel_after)
    ids = llm.chat_ids([{"role": "user", "content": prompt}])
    collector.state = GenerationState(ids, options, llm.tokenizer, llm.n_ctx)
    runner.submit(collector.state, collector)
    return collector


def wait_until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sequences_share_decode_steps(runner: Runner) -> None:
    start = runner.steps
    first = [submit(runner, f"Count from {n} upwards.", 16) for n in (1, 10, 100)]
    wait_until(lambda: len(first[0].pieces) >= 5)
    late = submit(runner, "Name some fruits.", 16)  # joins while the others run
    for c in [*first, late]:
        assert c.done.wait(60)
        assert len(c.pieces) == 16 or c.state.reason == "stop"
    steps = runner.steps - start
    total = sum(len(c.pieces) for c in [*first, late])
    assert steps < total * 0.6, (steps, total)  # one step advanced several sequences
    assert not runner.active and sorted(runner.free_slots()) == [0, 1, 2]


def test_cancel_frees_its_slot_within_one_step(runner: Runner) -> None:
    victim = submit(runner, "Write a very long story.", 400, cancel_after=3)
    other = submit(runner, "Write a poem.", 30)
    wait_until(lambda: victim.cancelled_at_step is not None)
    wait_until(lambda: all(job.state is not victim.state for job in runner.active))
    freed_at = runner.steps
    assert freed_at - victim.cancelled_at_step <= 1
    assert len(victim.pieces) <= 4
    assert other.done.wait(60) and len(other.pieces) >= 1  # the others go on


def test_http_client_disconnect_cancels(live_server: Server) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long story."}],
            "options": {"num_predict": 1000, "temperature": 0}}
    with httpx.stream("POST", live_server.url("/api/chat"), json=body, timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
        runner = live_server.scheduler.runners[MODEL]
        assert len(runner.active) == 1
    wait_until(lambda: not runner.active, timeout=5)
    assert runner.tokens_generated < 1000


def test_queue_bound_and_status() -> None:
    class Busy:
        queued = 3

    scheduler = Scheduler(num_parallel=1, max_loaded=1, max_queue=3)
    scheduler.runners["x"] = Busy()  # type: ignore[assignment]
    with pytest.raises(QueueFull) as full:
        scheduler.check_queue()
    assert error_status(full.value) == 503


def test_keep_alive_parsing() -> None:
    assert parse_keep_alive("5m") == 300 and parse_keep_alive("1h30m") == 5400 and parse_keep_alive("250ms") == 0.25
    assert parse_keep_alive(10) == 10 and parse_keep_alive("-1") == math.inf and parse_keep_alive(-5) == math.inf
    assert parse_keep_alive(0) == 0 and parse_keep_alive(None, 42.0) == 42.0
    for bad in ("soon", "5 minutes", "m5", True):
        with pytest.raises(BadRequest):
            parse_keep_alive(bad)


def test_keep_alive_zero_unloads(live_server: Server) -> None:
    reply = httpx.post(live_server.url("/api/generate"), json={
        "model": MODEL, "prompt": "hi", "stream": False, "keep_alive": 0, "options": {"num_predict": 2}}, timeout=60)
    assert reply.status_code == 200 and reply.json()["done"]
    wait_until(lambda: MODEL not in live_server.scheduler.runners, timeout=5)
    assert httpx.get(live_server.url("/api/ps")).json()["models"] == []
    loaded = httpx.post(live_server.url("/api/chat"), json={"model": MODEL, "messages": []}, timeout=60).json()
    assert loaded["done_reason"] == "load" and MODEL in live_server.scheduler.runners
