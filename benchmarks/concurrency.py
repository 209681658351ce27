"""Aggregate generation speed of concurrent streams against a camelid server (continuous batching), and the same
for llama-cpp-python's server when its python is given.

    python benchmarks/concurrency.py [--model smollm2:135m] [--streams 8] [--tokens 128] [-t THREADS]
                                     [--peer-python /work/peer-venv/bin/python]

Starts `camelid serve` with CAMELID_NUM_PARALLEL = streams on a free port, runs one stream alone, then N streams at
once (each asks for --tokens tokens; the figure counts the tokens actually generated), and prints tokens/s for both
and their ratio. With --peer-python, starts `python -m llama_cpp.server` on the same GGUF and threads and runs the
same N concurrent streams through its OpenAI API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROMPTS = ["Tell me a long story about a camel crossing the desert.", "Explain how a steam engine works, in detail.",
           "Describe the history of the printing press.", "Write a long poem about the sea.",
           "Explain photosynthesis step by step.", "Describe a day in the life of a medieval baker.",
           "Explain how computers store numbers.", "Write a travel guide to an imaginary city."]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"no answer from {url}")


async def camelid_stream(client: httpx.AsyncClient, model: str, prompt: str, tokens: int) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "options": {"num_predict": tokens, "temperature": 0.8, "seed": 1}}
    count = 0
    async with client.stream("POST", "/api/chat", json=body, timeout=600) as response:
        async for line in response.aiter_lines():
            chunk = json.loads(line)
            if chunk.get("done"):
                count = chunk.get("eval_count", 0)
    return count


async def peer_stream(client: httpx.AsyncClient, model: str, prompt: str, tokens: int) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
            "max_tokens": tokens, "temperature": 0.8, "seed": 1}
    count = 0
    async with client.stream("POST", "/v1/chat/completions", json=body, timeout=600) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    count += 1  # llama-cpp-python streams one token per chunk
    return count


async def measure(base: str, stream_fn, model: str, n: int, tokens: int) -> tuple[float, int]:
    async with httpx.AsyncClient(base_url=base) as client:
        start = time.perf_counter()
        counts = await asyncio.gather(*(stream_fn(client, model, PROMPTS[i % len(PROMPTS)], tokens)
                                        for i in range(n)))
        elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, sum(counts)


def run_camelid(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    env = dict(os.environ, CAMELID_HOST=f"127.0.0.1:{port}", CAMELID_NUM_PARALLEL=str(args.streams),
               CAMELID_CONTEXT_LENGTH="1024", CAMELID_NUM_THREADS=str(args.threads), NO_PROXY="127.0.0.1")
    server = subprocess.Popen([sys.executable, "-m", "camelid", "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/health", server)
        asyncio.run(measure(base, camelid_stream, args.model, 1, 8))  # load and warm up
        alone, n_alone = asyncio.run(measure(base, camelid_stream, args.model, 1, args.tokens))
        together, n_together = asyncio.run(measure(base, camelid_stream, args.model, args.streams, args.tokens))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"camelid      1 stream : {alone:7.1f} tokens/s ({n_alone} tokens)")
    print(f"camelid {args.streams:>6} streams: {together:7.1f} tokens/s together ({n_together} tokens)")
    print(f"camelid      ratio    : {together / alone:.2f} x one stream alone")
    return {"alone": alone, "together": together}


def run_peer(args: argparse.Namespace, path: str) -> None:
    port = free_port()
    command = [args.peer_python, "-m", "llama_cpp.server", "--model", path, "--n_threads", str(args.threads),
               "--n_threads_batch", str(args.threads), "--n_ctx", "2048", "--host", "127.0.0.1", "--port", str(port),
               "--interrupt_requests", "False"]  # its default cancels a stream when the next request arrives
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/v1/models", server)
        asyncio.run(measure(base, peer_stream, "m", 1, 8))
        alone, _ = asyncio.run(measure(base, peer_stream, "m", 1, args.tokens))
        together, n_together = asyncio.run(measure(base, peer_stream, "m", args.streams, args.tokens))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"llama-cpp-python server 1 stream : {alone:7.1f} tokens/s")
    print(f"llama-cpp-python server {args.streams} streams: {together:7.1f} tokens/s together ({n_together} tokens)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("-t", "--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--peer-python", help="python of a venv with llama-cpp-python[server]")
    args = parser.parse_args()
    print(f"{args.model}, {args.threads} threads, {args.tokens} tokens per stream")
    run_camelid(args)
    if args.peer_python:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from camelid.store import resolve_model

        run_peer(args, str(resolve_model(args.model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
