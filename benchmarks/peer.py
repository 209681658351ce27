"""camelid against llama.cpp (through llama-cpp-python) on the same GGUF, same threads, in one run.

    PYTHONPATH=. /path/to/peer-venv/bin/python benchmarks/peer.py [MODEL] [-p 512] [-n 128] [-r 3] [-t 2]

llama-cpp-python is never a camelid dependency: build it once in a separate venv (`pip install llama-cpp-python`,
about 10 minutes) and run this script with that venv's python. The two engines run alternately, repetition by
repetition, so that the noise of a shared machine falls on both. Prints, for pp (one prompt of random tokens, batches
of 512) and tg (tokens decoded one at a time), both figures in tokens/s and the ratio camelid / llama.cpp; then the
cold start to the first token of `camelid run MODEL "hi"` against llama-cpp-python's import + load + first token,
and camelid's resident memory after load above the `import torch` baseline, as a multiple of the file size.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH = 512


def llama_cpp_runner(path: str, threads: int, n_ctx: int):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=n_ctx, n_batch=BATCH, n_ubatch=BATCH, n_threads=threads,
                n_threads_batch=threads, flash_attn=False, verbose=False)

    def run(n_prompt: int, n_gen: int, seed: int) -> float:
        rng = random.Random(seed)
        llm.reset()
        elapsed = 0.0
        if n_prompt:
            ids = [rng.randrange(llm.n_vocab()) for _ in range(n_prompt)]
            start = time.perf_counter()
            llm.eval(ids)
            elapsed += time.perf_counter() - start
        for _ in range(n_gen):
            token = rng.randrange(llm.n_vocab())
            start = time.perf_counter()
            llm.eval([token])
            elapsed += time.perf_counter() - start
        return elapsed

    return run


def camelid_runner(path: str, threads: int, n_ctx: int):
    import camelid
    from camelid.cli.bench import run_tokens

    llm = camelid.load(path, num_thread=threads, num_ctx=n_ctx)
    return lambda n_prompt, n_gen, seed: run_tokens(llm, n_prompt, n_gen, seed)


def first_output_seconds(command: list[str], env: dict[str, str]) -> float:
    """Wall time from starting `command` to the first byte it writes on stdout."""
    start = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.read(1)
        elapsed = time.perf_counter() - start
        proc.kill()
        if not first:  # it ended without answering: a failure, not a fast start
            raise SystemExit(f"{command[:4]} printed no answer: {proc.stderr.read().decode()[-500:]}")
    return elapsed


# a GGUF without a chat template (Gemma-3-270M is the base model) gets the plain prompt, as `camelid run` gives it
LLAMA_COLD = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=512, n_threads=int(sys.argv[2]), verbose=False)
if "tokenizer.chat_template" in llm.metadata:
    chunks = llm.create_chat_completion([{"role": "user", "content": "hi"}], stream=True, max_tokens=64)
    texts = (chunk["choices"][0]["delta"].get("content") for chunk in chunks)
else:
    texts = (chunk["choices"][0]["text"] for chunk in llm.create_completion("hi", stream=True, max_tokens=64))
for text in texts:
    if text:
        sys.stdout.write(text); sys.stdout.flush(); break
"""

CAMELID_MEMORY = """
import os, sys, torch
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
base = rss()
import camelid
llm = camelid.load(sys.argv[1])
print(f"{(rss() - base) / llm.path.stat().st_size:.2f}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="smollm2:135m")
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("-r", "--repetitions", type=int, default=3)
    parser.add_argument("-t", "--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama_cpp cannot be imported: run this with the python of a venv where llama-cpp-python is installed")
        return 1
    from camelid.store import resolve_model

    path = str(resolve_model(args.model))
    n_ctx = max(args.n_prompt + args.n_gen, 64)
    engines = {"llama.cpp": llama_cpp_runner(path, args.threads, n_ctx),
               "camelid": camelid_runner(path, args.threads, n_ctx)}
    print(f"{Path(path).name}, {args.threads} threads, {args.repetitions} repetitions, alternating")
    for test, n_prompt, n_gen in ((f"pp{args.n_prompt}", args.n_prompt, 0), (f"tg{args.n_gen}", 0, args.n_gen)):
        if not (n_prompt or n_gen):
            continue
        samples: dict[str, list[float]] = {name: [] for name in engines}
        for name, run in engines.items():  # warm-up
            run(min(n_prompt, BATCH), min(n_gen, 8), -1)
        for rep in range(args.repetitions):
            for name, run in engines.items():
                samples[name].append((n_prompt or n_gen) / run(n_prompt, n_gen, rep))
        means = {name: statistics.fmean(s) for name, s in samples.items()}
        for name, s in samples.items():
            spread = statistics.stdev(s) if len(s) > 1 else 0.0
            print(f"  {test:7} {name:10} {means[name]:8.2f} ± {spread:6.2f} t/s")
        print(f"  {test:7} ratio camelid / llama.cpp = {means['camelid'] / means['llama.cpp']:.2f}")

    env = dict(os.environ, CAMELID_NUM_THREADS=str(args.threads))
    camelid_cmd = [sys.executable, "-m", "camelid.cli.main", "run", args.model, "hi"]
    llama_cmd = [sys.executable, "-c", LLAMA_COLD, path, str(args.threads)]
    cold: dict[str, list[float]] = {"camelid": [], "llama.cpp": []}
    failed: dict[str, str] = {}
    for _ in range(args.repetitions):
        for name, command in (("camelid", camelid_cmd), ("llama.cpp", llama_cmd)):
            try:
                cold[name].append(first_output_seconds(command, env))
            except SystemExit as err:  # e.g. llama-cpp-python's chat answers nothing for a GGUF without a template
                failed[name] = str(err).splitlines()[-1][:200]
    for name, s in cold.items():
        if name in failed:
            print(f"  cold start to first token  {name:10} no answer: {failed[name]}")
        else:
            print(f"  cold start to first token  {name:10} {statistics.fmean(s):6.2f} s (min {min(s):.2f})")
    memory = subprocess.run([sys.executable, "-c", CAMELID_MEMORY, args.model], capture_output=True, text=True,
                            env=env, check=False)
    print(f"  camelid resident memory after load, above import torch: {memory.stdout.strip() or memory.stderr[-200:]}"
          " x the file size")
    return 0


if __name__ == "__main__":
    sys.exit(main())
