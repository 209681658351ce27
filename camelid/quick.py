"""`QuickLLM`: a Llama-shaped model answered by the native kernels alone, without importing torch.

A one-shot `camelid run MODEL PROMPT` in a fresh process would otherwise spend most of its start importing torch;
this path loads in a fraction of that and gives the same tokens (the same kernels compute bit-identical logits,
and the sampler is shared). It covers what `NativeModel.create` accepts; for anything else `load_fast` loads the
full `LLM`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from camelid import config
from camelid.engine.native_engine import NativeEngine
from camelid.engine.options import Options
from camelid.engine.sequence import Done, Piece
from camelid.llm_base import BaseLLM, Generation, open_model


class QuickLLM(BaseLLM):
    """A loaded model run by `NativeEngine` (one sequence at a time)."""

    def __init__(self, model: Any, *args: Any) -> None:
        super().__init__(*args, n_ctx=model.n_ctx)
        self.engine = NativeEngine(model, self.tokenizer)

    def generate_ids(self, ids: list[int], options: Options | None = None) -> Generation:
        from camelid.kernels.library import set_threads

        opts = options or self.options
        set_threads(opts.num_thread if opts.num_thread > 0 else config.default_threads())

        def events() -> Iterator[Piece | Done]:
            yield from self.engine.generate(ids, opts)

        return Generation(events(), on_done=self._finish)


def load_fast(name_or_path: str | os.PathLike | None = None, *, report: Any = None, **options: Any) -> BaseLLM:
    """The model as a QuickLLM when the native path covers it (and CAMELID_QUICK is not 0), else as the torch
    `LLM` (camelid.load), from the same opened file: a one-shot answer starts as soon as it can."""
    from camelid.models.native_model import NativeModel
    from camelid.tokenizer import Tokenizer

    t0 = time.perf_counter_ns()
    opened = open_model(name_or_path, report, options)
    stored, opts, gguf = opened
    model = NativeModel.create(gguf, opts.num_ctx) if os.environ.get("CAMELID_QUICK", "1") != "0" else None
    if model is None:
        from camelid.llm import load_opened

        return load_opened(opened, t0)
    tokenizer = Tokenizer.from_metadata(gguf.metadata)
    return QuickLLM(model, stored.path, gguf, tokenizer, opts, time.perf_counter_ns() - t0, stored)
