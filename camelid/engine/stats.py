"""A request's timings as Ollama reports them; torch-free, so the CLI can read a server's answer with it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Stats:
    """Timings of one request, named and measured (nanoseconds) as Ollama reports them."""

    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    load_duration: int = 0
    total_duration: int = 0
    done_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_eval_count / (self.prompt_eval_duration / 1e9) if self.prompt_eval_duration else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.eval_count / (self.eval_duration / 1e9) if self.eval_duration else 0.0
