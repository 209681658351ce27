"""`camelid run [MODEL] [PROMPT]`: a one-shot answer, or an interactive chat in the Ollama manner."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from camelid.cli.output import format_stats, stream

_NAME = re.compile(r"^[A-Za-z0-9][\w.\-/]*:[\w.\-]+$")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="chat with a model, or answer one prompt",
                       description="Run a model: one answer when PROMPT is given (or piped on stdin), "
                                   "otherwise an interactive chat. MODEL is a name (default smollm2:135m) "
                                   "or a path to a .gguf file.")
    p.add_argument("words", nargs="*", metavar="[MODEL] [PROMPT]")
    p.add_argument("--verbose", action="store_true", help="print timings after each answer")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--seed", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--num-predict", type=int)
    p.add_argument("--num-ctx", type=int)
    p.add_argument("-t", "--threads", type=int, dest="num_thread")
    p.add_argument("--local", action="store_true", help="run in this process even when a server answers at "
                                                          "CAMELID_HOST")
    p.set_defaults(handler=run_command)


def looks_like_model(word: str) -> bool:
    """Whether the first word names a model (a catalog name or alias, name:tag, or a .gguf path)."""
    from camelid.store.catalog import lookup
    from camelid.store.pull import is_hf, is_url

    return (lookup(word) is not None or bool(_NAME.match(word)) or word.endswith(".gguf") or is_url(word)
            or is_hf(word) or Path(word).is_file())


def split_words(words: list[str]) -> tuple[str | None, str]:
    """[MODEL] [PROMPT...] -> (model or None, prompt)."""
    if len(words) >= 2 or (words and looks_like_model(words[0])):
        return words[0], " ".join(words[1:])
    return None, " ".join(words)


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    names = ("seed", "temperature", "num_predict", "num_ctx", "num_thread")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def read_piped_stdin(wait: bool) -> str:
    """Text piped on stdin, as Ollama reads it. With a prompt on the command line, stdin is read only when it
    already has data (or is at end of file), so an idle inherited pipe never blocks the answer."""
    if sys.stdin is None or sys.stdin.isatty():
        return ""
    if not wait:
        import select

        try:
            ready, _, _ = select.select([sys.stdin], [], [], 0.05)
        except (OSError, ValueError):
            return ""
        if not ready:
            return ""
    return sys.stdin.read()


def server_url() -> str | None:
    """The server at CAMELID_HOST when one answers. A plain connect first: when nothing listens (the usual case
    for a one-shot run) the HTTP client is not even imported."""
    import socket

    from camelid import config

    host, port = config.host_and_port()
    try:
        socket.create_connection((host, port), timeout=0.25).close()
    except OSError:
        return None
    from camelid.cli.remote import server_url as probe

    return probe()


def run_command(args: argparse.Namespace) -> int:
    model_name, prompt = split_words(args.words)
    piped = read_piped_stdin(wait=not prompt)
    if piped.strip():
        prompt = piped + ("\n\n" + prompt if prompt else "")
    options = options_from(args)
    from camelid.cli.progress import PullProgress

    url = None if args.local else server_url()
    with PullProgress() as progress:
        if url:
            from camelid.cli.remote import RemoteLLM

            llm: Any = RemoteLLM(url, model_name, report=progress)
        else:  # the torch-free native path when it covers the model: a fast cold start
            from camelid.quick import load_fast

            llm = load_fast(model_name, report=progress, **options)
    if not prompt:
        if sys.stdin is None or not sys.stdin.isatty():
            return 0
        from camelid.cli.repl import Repl

        Repl(llm, system=args.system or llm.system, verbose=args.verbose).loop()
        return 0
    messages = ([{"role": "system", "content": args.system}] if args.system else [])
    messages.append({"role": "user", "content": prompt})
    answer = llm.chat(messages, **(options if url else {}))
    stream(answer)
    print()
    if args.verbose and answer.stats:
        print(format_stats(answer.stats), file=sys.stderr)
    return 0
