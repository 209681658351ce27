"""`camelid bench MODEL`: prompt-processing and generation throughput in the manner of llama-bench.

pp<N>: one prompt of N random tokens, fed in batches of 512 into an empty context; tg<N>: N tokens decoded one at a
time from an empty context. Like llama-bench, a warm-up run comes first, timings cover the forward passes only (no
tokenization, no sampling), and each test is repeated `-r` times: t/s is the mean ± sample standard deviation.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from camelid.errors import BadRequest

BATCH = 512


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure prompt and generation speed (llama-bench style)",
                       description="Measure prompt processing (pp) and text generation (tg) throughput.")
    p.add_argument("model", nargs="?", default=None, help="model name or .gguf path (default smollm2:135m)")
    p.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens for the pp test (0 = skip)")
    p.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens for the tg test (0 = skip)")
    p.add_argument("-r", "--repetitions", type=int, default=3)
    p.add_argument("-t", "--threads", type=int, default=0, help="CPU threads (default: all this process may use)")
    p.add_argument("--json", action="store_true", help="one JSON object per line per test")
    p.set_defaults(handler=bench_command)


def run_tokens(llm: Any, n_prompt: int, n_gen: int, seed: int) -> float:
    """Seconds spent in the forward passes of one pp (n_prompt > 0) or tg (n_gen > 0) run from an empty slot."""
    engine = llm.engine
    engine.forget(0)
    rng = random.Random(seed)
    vocab = llm.vocab_size
    elapsed = 0.0
    if n_prompt:
        ids = [rng.randrange(vocab) for _ in range(n_prompt)]
        start = time.perf_counter()
        for chunk in range(0, n_prompt, BATCH):
            engine.forward(0, ids[chunk:chunk + BATCH], chunk, all_logits=False)
        elapsed += time.perf_counter() - start
    for position in range(n_gen):
        token = rng.randrange(vocab)
        start = time.perf_counter()
        engine.forward(0, [token], position, all_logits=False)
        elapsed += time.perf_counter() - start
    return elapsed


def measure(llm: Any, n_prompt: int, n_gen: int, repetitions: int) -> list[float]:
    """Tokens per second of each repetition, after one warm-up run."""
    n = n_prompt or n_gen
    run_tokens(llm, min(n_prompt, BATCH), min(n_gen, 8), seed=-1)  # warm-up: caches, kernel build, page-in
    return [n / run_tokens(llm, n_prompt, n_gen, seed=r) for r in range(repetitions)]


def bench_command(args: argparse.Namespace) -> int:
    import camelid
    from camelid.kernels import native

    if args.repetitions < 1 or args.n_prompt < 0 or args.n_gen < 0:
        raise BadRequest("repetitions must be at least 1 and token counts not negative")
    options: dict[str, Any] = {"num_ctx": max(args.n_prompt, args.n_gen, 1)}
    if args.threads > 0:
        options["num_thread"] = args.threads
    llm = camelid.load(args.model, **options)
    import torch

    threads = torch.get_num_threads()
    info = llm.info()
    backend = "CPU native" if native.library() is not None else "CPU torch"
    tests = [(f"pp{args.n_prompt}", args.n_prompt, 0)] if args.n_prompt else []
    tests += [(f"tg{args.n_gen}", 0, args.n_gen)] if args.n_gen else []
    rows = []
    for name, n_prompt, n_gen in tests:
        samples = measure(llm, n_prompt, n_gen, args.repetitions)
        result = {"model": info["name"] or llm.path.name, "size": info["file_size"],
                  "params": info["parameter_count"], "backend": backend, "test": name, "n_prompt": n_prompt,
                  "n_gen": n_gen, "threads": threads, "avg_ts": statistics.fmean(samples),
                  "stddev_ts": statistics.stdev(samples) if len(samples) > 1 else 0.0, "samples_ts": samples}
        rows.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
    if not args.json:
        print_table(rows, info)
    return 0


def print_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("model", "size", "params", "backend", "threads", "test", "t/s"):
        table.add_column(column, justify="right" if column in ("size", "params", "threads", "t/s") else "left",
                         no_wrap=True)
    for row in rows:
        model = f"{info['architecture']} {info['parameters']} {info['quantization']}"
        table.add_row(model, f"{row['size'] / 2**20:.2f} MiB", info["parameters"], row["backend"],
                      str(row["threads"]), row["test"], f"{row['avg_ts']:.2f} ± {row['stddev_ts']:.2f}")
    Console(width=max(Console().width, 110)).print(table)
