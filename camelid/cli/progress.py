"""Pull progress as Ollama shows it: one bar per layer on a terminal, plain status lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, Self, TextIO

from camelid.store.pull import PullEvent


def human_bytes(n: float) -> str:
    """Ollama's format.HumanBytes: decimal units, no decimals from 10 up (98 MB, 1.9 GB, 254 B)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{int(n)} B"


class PullProgress:
    """A callable for `pull(report=...)`; use as a context manager around the pull."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.tasks: dict[str, Any] = {}
        self.last_status = ""
        self.progress: Any = None

    def __enter__(self) -> Self:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn

            self.progress = Progress(TextColumn("{task.description}"), TaskProgressColumn(), BarColumn(),
                                     DownloadColumn(binary_units=False), console=Console(file=self.out),
                                     transient=False)
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: PullEvent) -> None:
        key = event.digest or event.status
        if event.total is not None and self.progress is not None:
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(event.status + "...", total=event.total)
            self.progress.update(self.tasks[key], completed=event.completed or 0, total=event.total)
            return
        if event.total is not None:  # not a terminal: one line per layer, when it starts
            if key not in self.tasks:
                self.tasks[key] = True
                print(f"{event.status} ({human_bytes(event.total)})", file=self.out, flush=True)
            return
        if event.status != self.last_status:
            self.last_status = event.status
            if self.progress is not None:
                self.progress.console.print(event.status)
            else:
                print(event.status, file=self.out, flush=True)
