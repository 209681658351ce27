"""The Python API that users, the CLI and the tests share: `camelid.load(name_or_path)` → `LLM`."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from camelid import config
from camelid.engine.generate import Done, Engine, Piece
from camelid.engine.options import Options
from camelid.llm_base import BaseLLM, Generation, check_messages

if TYPE_CHECKING:
    from camelid.store.resolve import ResolvedModel

__all__ = ["LLM", "Generation", "check_messages", "load", "set_threads"]


class LLM(BaseLLM):
    """A loaded model: tokenizer, network and engine, with request defaults (`options`)."""

    def __init__(self, path: Path, model: Any, model_config: Any, gguf: Any, tokenizer: Any,
                 options: Options, load_duration_ns: int, stored: ResolvedModel | None = None,
                 n_slots: int = 1) -> None:
        train_ctx = int(getattr(model_config, "context_length", 0) or options.num_ctx)
        super().__init__(path, gguf, tokenizer, options, load_duration_ns, stored, min(options.num_ctx, train_ctx))
        self.model, self.config = model, model_config
        self.engine = Engine(model, tokenizer, self.n_ctx, n_slots=n_slots)
        self._lock = threading.Lock()

    # -- logits -----------------------------------------------------------------------------------------
    def logits(self, ids: list[int]) -> torch.Tensor:
        """Float32 logits [len(ids), vocab] at every position of `ids`, fed from position 0."""
        with self._lock:
            return self.engine.prefill(0, list(ids), self.options.num_batch, reuse=False, all_logits=True).float()

    def generate_ids(self, ids: list[int], options: Options | None = None) -> Generation:
        opts = options or self.options
        if opts.num_thread > 0:
            set_threads(opts.num_thread)

        def events() -> Iterator[Piece | Done]:
            with self._lock:
                yield from self.engine.generate(ids, opts)

        return Generation(events(), on_done=self._finish)


def load(name_or_path: str | os.PathLike | None = None, *, report: Any = None, n_slots: int = 1,
         **options: Any) -> LLM:
    """Load a model by name (`smollm2:135m`), alias, path to a .gguf file, hf.co/ORG/REPO or URL; a catalog model
    not yet in the library is pulled first (`report` receives the pull's progress events). The model's stored
    PARAMETERs, then `options`, become request defaults; `num_ctx` and `num_thread` also shape the load.
    `n_slots` sequences can be generated at once (the server's batching), each with `num_ctx` positions."""
    from camelid.llm_base import open_model

    t0 = time.perf_counter_ns()
    return load_opened(open_model(name_or_path, report, options), t0, n_slots)


def load_opened(opened: tuple[Any, Options, Any], t0: int, n_slots: int = 1) -> LLM:
    """`load` for a model already resolved and opened (camelid.llm_base.open_model) since `t0` (perf_counter_ns)."""
    from camelid.loader import load_gguf
    from camelid.tokenizer import Tokenizer

    stored, opts, gguf = opened
    set_threads(opts.num_thread if opts.num_thread > 0 else config.default_threads())
    model, model_config, _ = load_gguf(gguf)
    tokenizer = Tokenizer.from_metadata(gguf.metadata)
    llm = LLM(stored.path, model, model_config, gguf, tokenizer, opts, time.perf_counter_ns() - t0, stored, n_slots)
    # The model, its vocabulary and torch's modules are hundreds of thousands of long-lived objects: keep them out
    # of the cyclic collector's way (a full collection during decoding cost 4 % of the time).
    gc.freeze()
    return llm


def set_threads(n: int) -> None:
    """Compute threads for torch and for the native kernels alike."""
    from camelid.kernels import native

    torch.set_num_threads(n)
    native.set_threads(n)
