"""Loaded models and the work on them: load on demand, unload when `keep_alive` runs out, several models at once,
a bounded queue, and continuous batching — every sequence of a model advances in ONE batched forward per step,
new sequences join between steps (after their prefill) and finished or cancelled ones leave.

Each loaded model has a `Runner`: a thread that owns the model's engine and KV-cache slots. Fronts (the HTTP
server, the CLI) submit `GenerationState`s with a callback for their events and get them back from that thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from camelid import config
from camelid.engine.generate import common_prefix
from camelid.engine.sequence import Done, GenerationState, Piece
from camelid.errors import BadRequest, CamelidError

log = logging.getLogger("camelid")
Deliver = Callable[[list[Piece | Done]], None]


class QueueFull(CamelidError):
    """Too many requests are waiting: the server answers 503."""


def parse_keep_alive(value: Any, default: float | None = None) -> float:
    """Ollama's keep_alive: a duration string ("5m", "1h30m", "10s", "250ms") or seconds; negative = forever
    (math.inf); 0 = unload as soon as idle. None = the default (CAMELID_KEEP_ALIVE)."""
    if value is None or value == "":
        return default if default is not None else parse_keep_alive(config.CAMELID_KEEP_ALIVE.get(), 300.0)
    if isinstance(value, bool):
        raise BadRequest(f"keep_alive: invalid duration {value!r}")
    if isinstance(value, int | float):
        return math.inf if value < 0 else float(value)
    text = str(value).strip()
    try:
        seconds = float(text)
        return math.inf if seconds < 0 else seconds
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(-?[0-9.]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
        raise BadRequest(f"keep_alive: invalid duration {value!r} (e.g. \"5m\", \"1h\", \"30s\", -1)")
    total = sum(float(n) * units[u] for n, u in parts)
    return math.inf if total < 0 else total


@dataclass
class _Job:
    state: GenerationState
    deliver: Deliver


class Runner:
    """One loaded model and the thread that runs every sequence on it."""

    def __init__(self, name: str, llm: Any, keep_alive: float) -> None:
        self.name, self.llm = name, llm
        self.engine = llm.engine
        # the engine's last slot is kept for embeddings (computed between decode steps); the rest generate
        self.n_slots = max(1, self.engine.n_slots - 1)
        self.keep_alive = keep_alive
        self.expires_at = time.time() + keep_alive
        self.loaded_at = time.time()
        self.waiting: deque[_Job] = deque()
        self.active: list[_Job] = []
        self.calls: deque[tuple[Callable[[Any], Any], concurrent.futures.Future]] = deque()
        self.steps = 0  # decode steps taken (tests measure cancellation in steps)
        self.tokens_generated = 0
        self.prompt_tokens = 0
        self.prefill_seconds = 0.0  # time spent on prompts and on decode steps, for tokens/s in /metrics
        self.decode_seconds = 0.0
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"camelid-runner-{name}", daemon=True)
        self._thread.start()

    # -- from any thread ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.active or self.calls)

    @property
    def queued(self) -> int:
        return len(self.waiting)

    def submit(self, state: GenerationState, deliver: Deliver) -> None:
        with self._wake:
            self.waiting.append(_Job(state, deliver))
            self._wake.notify()

    def call(self, fn: Callable[[Any], Any]) -> concurrent.futures.Future:
        """Run fn(engine) on the runner thread between decode steps (embeddings, tokenizer-free engine work)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._wake:
            self.calls.append((fn, future))
            self._wake.notify()
        return future

    def touch(self, keep_alive: float) -> None:
        self.keep_alive = keep_alive
        self.expires_at = time.time() + keep_alive

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def kv_usage(self) -> float:
        """Share of the KV cache's positions the active sequences hold."""
        used = sum(len(job.state.history) for job in self.active)
        return used / max(1, self.n_slots * self.engine.n_ctx)

    # -- the runner thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not (self.waiting or self.active or self.calls or self._stopping):
                    self._wake.wait()
                if self._stopping:
                    break
                calls = list(self.calls)
                self.calls.clear()
            for fn, future in calls:
                self._run_call(fn, future)
            self._drop_cancelled()
            self._admit()
            if self.active:
                self._step()
        for job in self.active + list(self.waiting):
            job.deliver(job.state.cancel())

    def _run_call(self, fn: Callable[[Any], Any], future: concurrent.futures.Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            with self.llm._lock:
                future.set_result(fn(self.engine))
        except BaseException as err:  # noqa: BLE001  (handed to the caller's thread, re-raised there)
            future.set_exception(err)

    def free_slots(self) -> list[int]:
        used = {job.state.slot for job in self.active}
        return [slot for slot in range(self.n_slots) if slot not in used]

    def _drop_cancelled(self) -> None:
        for job in [j for j in self.active if j.state.cancelled]:
            self.active.remove(job)
        with self._wake:
            for job in [j for j in self.waiting if j.state.cancelled]:
                self.waiting.remove(job)

    def _admit(self) -> None:
        """Start waiting sequences in free slots — the slot whose cache shares the longest prefix, so that a
        conversation's next turn lands where its last one left its keys and values — all prefilled together."""
        jobs: list[_Job] = []
        free = self.free_slots()
        with self._wake:
            while free and self.waiting:
                job = self.waiting.popleft()
                slot = max(free, key=lambda s: common_prefix(self.engine.slot_tokens[s], job.state.ids))
                free.remove(slot)
                job.state.slot = slot
                jobs.append(job)
        if not jobs:
            return
        started = time.perf_counter()
        try:
            with self.llm._lock:
                events = self.engine.start_many([job.state for job in jobs])
        except Exception as err:  # noqa: BLE001  (a bad request or an engine failure fails those requests only)
            if len(jobs) > 1:  # find the culprit: start them one by one
                with self._wake:
                    self.waiting.extendleft(reversed(jobs))
                self._admit_one_by_one(len(jobs))
                return
            log.warning("request failed: %s", err)
            jobs[0].deliver([_failure(jobs[0].state, err)])
            return
        self.prefill_seconds += time.perf_counter() - started
        for i, job in enumerate(jobs):
            self.prompt_tokens += len(job.state.ids)
            self._deliver(job, events[i])
            if not job.state.finished:
                self.active.append(job)

    def _admit_one_by_one(self, count: int) -> None:
        for _ in range(count):
            with self._wake:
                if not self.waiting:
                    return
                job = self.waiting.popleft()
            free = self.free_slots()
            job.state.slot = max(free, key=lambda s: common_prefix(self.engine.slot_tokens[s], job.state.ids))
            try:
                with self.llm._lock:
                    events = self.engine.start(job.state)
            except Exception as err:  # noqa: BLE001  (that request only)
                log.warning("request failed: %s", err)
                job.deliver([_failure(job.state, err)])
                continue
            self.prompt_tokens += len(job.state.ids)
            self._deliver(job, events)
            if not job.state.finished:
                self.active.append(job)

    def _step(self) -> None:
        states = [job.state for job in self.active]
        started = time.perf_counter()
        try:
            with self.llm._lock:
                events = self.engine.step(states)
        except Exception as err:
            if isinstance(err, CamelidError):  # e.g. a damaged model's NaN logits: its message says it all
                log.warning("decode step failed: %s", err)
            else:
                log.exception("decode step failed")
            for job in self.active:
                job.deliver([_failure(job.state, err)])
            self.active.clear()
            return
        self.steps += 1
        self.decode_seconds += time.perf_counter() - started
        for i, job in enumerate(list(self.active)):
            self._deliver(job, events.get(i, []))
        self.active = [job for job in self.active if not job.state.finished]

    def _deliver(self, job: _Job, events: list[Piece | Done]) -> None:
        self.tokens_generated += sum(1 for e in events if isinstance(e, Piece) and e.token is not None)
        if any(isinstance(e, Done) for e in events):
            self.expires_at = time.time() + self.keep_alive
        try:
            job.deliver(events)
        except Exception:  # noqa: BLE001  (a front that went away must not stop the others)
            job.state.cancelled = True


@dataclass
class Failure:
    """An error event in place of Done: the request failed after it was accepted."""

    error: CamelidError | Exception
    stats: Any = None


def _failure(state: GenerationState, err: Exception) -> Any:
    state.finished = True
    return Failure(err)


@dataclass
class Scheduler:
    """The loaded models by name; loads, evicts and unloads them."""

    num_parallel: int = field(default_factory=lambda: config.int_setting(config.CAMELID_NUM_PARALLEL, 1))
    max_loaded: int = field(default_factory=lambda: config.int_setting(config.CAMELID_MAX_LOADED_MODELS, 1))
    max_queue: int = field(default_factory=lambda: config.int_setting(config.CAMELID_MAX_QUEUE, 1))
    loader: Callable[..., Any] | None = None
    runners: dict[str, Runner] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("prompt_tokens", "tokens_generated", "prefill_seconds", "decode_seconds"), 0))
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def load_model(self, name: str, num_ctx: int | None) -> Any:
        """Load through camelid.load (or the injected loader): num_parallel generation slots + one for embeddings."""
        if self.loader is not None:
            return self.loader(name, num_ctx)
        import camelid

        options: dict[str, Any] = {"num_ctx": num_ctx or config.int_setting(config.CAMELID_CONTEXT_LENGTH, 1)}
        return camelid.load(name, n_slots=self.num_parallel + 1, **options)

    async def runner(self, name: str, keep_alive: float | None = None, num_ctx: int | None = None) -> Runner:
        """The runner of a model, loading it (in a worker thread) when needed."""
        keep = parse_keep_alive(keep_alive) if not isinstance(keep_alive, float) else keep_alive
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            runner = self.runners.get(name)
            if runner is not None and num_ctx and num_ctx != runner.engine.n_ctx and not runner.busy:
                await self.unload(name)
                runner = None
            if runner is None:
                await self._make_room()
                llm = await asyncio.to_thread(self.load_model, name, num_ctx)
                runner = Runner(name, llm, keep)
                self.runners[name] = runner
            runner.touch(keep)
            return runner

    def check_queue(self) -> None:
        if sum(r.queued for r in self.runners.values()) >= self.max_queue:
            raise QueueFull(f"server busy: {self.max_queue} requests are already waiting; try again later")

    async def _make_room(self) -> None:
        while len(self.runners) >= self.max_loaded:
            idle = [r for r in self.runners.values() if not r.busy]
            if idle:
                await self.unload(min(idle, key=lambda r: r.expires_at).name)
            else:
                await asyncio.sleep(0.05)

    async def unload(self, name: str) -> bool:
        runner = self.runners.pop(name, None)
        if runner is None:
            return False
        await asyncio.to_thread(runner.stop)
        for key in self.totals:
            self.totals[key] += getattr(runner, key)
        return True

    async def reap(self) -> None:
        """Unload idle models whose keep_alive ran out (run as a background task)."""
        while True:
            now = time.time()
            for runner in list(self.runners.values()):
                if not runner.busy and runner.expires_at <= now:
                    await self.unload(runner.name)
            await asyncio.sleep(0.25)

    async def close(self) -> None:
        for name in list(self.runners):
            await self.unload(name)
