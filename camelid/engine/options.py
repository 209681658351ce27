"""Request options with Ollama's names and defaults, validated once at the edge."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from camelid.config import DEFAULT_NUM_BATCH, DEFAULT_NUM_CTX
from camelid.errors import BadRequest

if TYPE_CHECKING:
    from camelid.engine.sampling import SamplingParams

log = logging.getLogger("camelid")


@dataclass(frozen=True)
class Options:
    """Everything a request may set. Sampling fields mirror `SamplingParams`."""

    num_predict: int = -1  # tokens to generate; -1 = until end of generation or a full context
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1  # -1 = a fresh random seed each request
    stop: tuple[str, ...] = field(default=())
    num_ctx: int = DEFAULT_NUM_CTX  # load-time: context window (KV cache positions)
    num_batch: int = DEFAULT_NUM_BATCH  # prompt tokens per forward pass during prefill
    num_thread: int = 0  # 0 = camelid's default
    num_keep: int = 0  # accepted for compatibility
    num_gpu: int = -1  # layers to offload to a GPU; accepted, the CPU runs everything for now
    main_gpu: int = 0  # accepted for compatibility
    use_mmap: bool = True  # weights are always mapped from the file

    @property
    def sampling(self) -> SamplingParams:
        from camelid.engine.sampling import SamplingParams  # torch: only when generating

        names = {f.name for f in dataclasses.fields(SamplingParams)}
        return SamplingParams(**{name: getattr(self, name) for name in names})

    def merged(self, overrides: dict[str, Any] | None) -> Options:
        """A copy with `overrides` applied (validated); unknown names are logged and ignored, as Ollama does."""
        if not overrides:
            return self
        known = {f.name: f for f in dataclasses.fields(Options)}
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in known:
                log.warning("ignoring unknown option %r", name)
                continue
            values[name] = coerce_option(name, value, getattr(self, name))
        result = dataclasses.replace(self, **values)
        result.validate()
        return result

    def validate(self) -> None:
        if self.num_ctx < 1:
            raise BadRequest(f"num_ctx must be positive, got {self.num_ctx}")
        if self.num_batch < 1:
            raise BadRequest(f"num_batch must be positive, got {self.num_batch}")
        if self.temperature < 0:
            raise BadRequest(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 <= self.top_p <= 1.0 or not 0.0 <= self.min_p <= 1.0:
            raise BadRequest("top_p and min_p must lie in [0, 1]")


def coerce_option(name: str, value: Any, default: Any) -> Any:
    """Convert a user value to the type of the option's default, or raise one clear BadRequest."""
    try:
        if isinstance(default, tuple):
            return (value,) if isinstance(value, str) else tuple(str(v) for v in value)
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"option {name}: invalid value {value!r}") from None
    return value
