"""Printing shared by the commands: streamed text and Ollama's --verbose timing block."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from camelid.engine.generate import Stats


def stream(pieces: Iterable[str], out: TextIO = sys.stdout) -> str:
    """Write pieces as they come; return the whole text."""
    parts = []
    for piece in pieces:
        out.write(piece)
        out.flush()
        parts.append(piece)
    return "".join(parts)


def _duration(ns: int) -> str:
    seconds = ns / 1e9
    if seconds >= 1:
        return f"{seconds:.6g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.6g}ms"
    return f"{seconds * 1e6:.6g}µs"


def format_stats(stats: Stats) -> str:
    """The timing block `ollama run --verbose` prints after an answer."""
    lines = [
        ("total duration", _duration(stats.total_duration)),
        ("load duration", _duration(stats.load_duration)),
        ("prompt eval count", f"{stats.prompt_eval_count} token(s)"),
        ("prompt eval duration", _duration(stats.prompt_eval_duration)),
        ("prompt eval rate", f"{stats.prompt_tokens_per_second:.2f} tokens/s"),
        ("eval count", f"{stats.eval_count} token(s)"),
        ("eval duration", _duration(stats.eval_duration)),
        ("eval rate", f"{stats.tokens_per_second:.2f} tokens/s"),
    ]
    return "\n".join(f"{name + ':':<22}{value}" for name, value in lines)
