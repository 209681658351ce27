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
from camelid.engine.generate import Done, Engine, Piece, Stats
from camelid.engine.options import Options
from camelid.errors import BadRequest

if TYPE_CHECKING:
    from camelid.store.resolve import ResolvedModel


class Generation:
    """An answer being generated: iterate for text pieces; `stats`, `text` and `tokens` are set once it is done."""

    def __init__(self, events: Iterator[Piece | Done], on_done: Any = None) -> None:
        self._events, self._on_done = events, on_done
        self.stats: Stats | None = None
        self.tokens: list[int] = []
        self._parts: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for event in self._events:
            if isinstance(event, Done):
                self.stats, self.tokens = event.stats, event.tokens
                if self._on_done:
                    self._on_done(event.stats)
            elif event.text:
                self._parts.append(event.text)
                yield event.text

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def result(self) -> str:
        """Run to the end and return the whole text."""
        for _ in self:
            pass
        return self.text

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close:
            close()


class LLM:
    """A loaded model: tokenizer, network and engine, with request defaults (`options`)."""

    def __init__(self, path: Path, model: Any, model_config: Any, gguf: Any, tokenizer: Any,
                 options: Options, load_duration_ns: int, stored: ResolvedModel | None = None,
                 n_slots: int = 1) -> None:
        self.path, self.model, self.config, self.gguf, self.tokenizer = path, model, model_config, gguf, tokenizer
        self.options = options
        # What the model library stored with it (Modelfile SYSTEM, MESSAGE, TEMPLATE): defaults for chat.
        self.name = stored.name if stored else path.name
        self.system = stored.system if stored else None
        self.template = stored.template if stored else None  # an Ollama (Go) template, else the GGUF's jinja one
        self.history = list(stored.messages) if stored else []
        self.load_duration_ns = load_duration_ns
        self.last_stats: Stats | None = None
        train_ctx = int(getattr(model_config, "context_length", 0) or options.num_ctx)
        self.n_ctx = min(options.num_ctx, train_ctx)
        self.engine = Engine(model, tokenizer, self.n_ctx, n_slots=n_slots)
        self._lock = threading.Lock()
        self._first_request = True

    # -- tokens -----------------------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos, special=special)

    def detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    # -- logits -----------------------------------------------------------------------------------------
    def logits(self, ids: list[int]) -> torch.Tensor:
        """Float32 logits [len(ids), vocab] at every position of `ids`, fed from position 0."""
        with self._lock:
            return self.engine.prefill(0, list(ids), self.options.num_batch, reuse=False, all_logits=True).float()

    # -- text -------------------------------------------------------------------------------------------
    def generate(self, prompt: str, **options: Any) -> Generation:
        """Complete `prompt` as raw text (BOS as the model's metadata says, special tokens parsed)."""
        opts = self.options.merged(options)
        ids = self.tokenize(prompt, add_bos=self.tokenizer.add_bos, special=True)
        return self.generate_ids(ids, opts)

    def chat(self, messages: list[dict[str, Any]], tools: list[dict] | None = None, **options: Any) -> Generation:
        """Answer a conversation rendered through the model's chat template."""
        opts = self.options.merged(options)
        return self.generate_ids(self.chat_ids(self.with_defaults(messages), tools=tools), opts)

    def with_defaults(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The stored MESSAGE history and SYSTEM prompt ahead of a conversation, as Ollama adds them (a system
        message in the conversation replaces the stored one)."""
        check_messages(messages)
        has_system = any(m.get("role") == "system" for m in messages)
        head = [{"role": "system", "content": self.system}] if self.system and not has_system else []
        return head + self.history + list(messages)

    def render_chat(self, messages: list[dict[str, Any]], tools: list[dict] | None = None,
                    add_generation_prompt: bool = True) -> str:
        from camelid.tokenizer import render_chat

        check_messages(messages)
        template = self.template if self.template is not None else self.chat_template
        if tools and "tools" not in (template or "").lower():  # the template cannot show them: say it in words
            from camelid.engine.tools import with_tools_prompt

            messages = with_tools_prompt(messages, tools)
            tools = None
        if self.template is not None:
            from camelid.tokenizer.gotemplate import render_ollama

            return render_ollama(self.template, messages, tools=tools)
        tok = self.tokenizer
        bos = tok.decode([tok.bos_id], skip_special=False) if tok.bos_id is not None else ""
        eos = tok.decode([tok.eos_id], skip_special=False) if tok.eos_id is not None else ""
        return render_chat(self.chat_template, messages,
                           add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token=eos, tools=tools)

    @property
    def chat_template(self) -> str | None:
        """The GGUF's jinja chat template, else its architecture's usual one (None: ChatML)."""
        from camelid.tokenizer.chat import default_template

        return self.gguf.get("tokenizer.chat_template") or default_template(self.gguf.architecture)

    def chat_ids(self, messages: list[dict[str, Any]], tools: list[dict] | None = None) -> list[int]:
        """Token ids of a rendered conversation; one BOS even when the template writes it too."""
        ids = self.tokenize(self.render_chat(messages, tools=tools), add_bos=self.tokenizer.add_bos, special=True)
        bos = self.tokenizer.bos_id
        if len(ids) >= 2 and bos is not None and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        return ids

    def generate_ids(self, ids: list[int], options: Options | None = None) -> Generation:
        opts = options or self.options
        if opts.num_thread > 0:
            set_threads(opts.num_thread)

        def events() -> Iterator[Piece | Done]:
            with self._lock:
                yield from self.engine.generate(ids, opts)

        return Generation(events(), on_done=self._finish)

    def _finish(self, stats: Stats) -> None:
        if self._first_request:  # Ollama reports the load once, on the request that loaded the model
            stats.load_duration = self.load_duration_ns
            stats.total_duration += self.load_duration_ns
            self._first_request = False
        self.last_stats = stats

    # -- facts ------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What `/show info` prints: architecture, parameters, context length, embedding length, quantization."""
        from camelid.gguf.info import describe

        return describe(self.gguf, self.n_ctx)

    def __repr__(self) -> str:
        return f"LLM({self.path.name!r}, n_ctx={self.n_ctx})"


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages must be a list of {role, content} objects")
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"message role must be system, user, assistant or tool, got {message.get('role')!r}")


def load(name_or_path: str | os.PathLike | None = None, *, report: Any = None, n_slots: int = 1,
         **options: Any) -> LLM:
    """Load a model by name (`smollm2:135m`), alias, path to a .gguf file, hf.co/ORG/REPO or URL; a catalog model
    not yet in the library is pulled first (`report` receives the pull's progress events). The model's stored
    PARAMETERs, then `options`, become request defaults; `num_ctx` and `num_thread` also shape the load.
    `n_slots` sequences can be generated at once (the server's batching), each with `num_ctx` positions."""
    from camelid.errors import UnknownModel
    from camelid.gguf import GGUFFile
    from camelid.loader import load_gguf
    from camelid.store import resolve
    from camelid.tokenizer import Tokenizer

    t0 = time.perf_counter_ns()
    stored = resolve(name_or_path, report=report)
    if stored.path is None:
        raise UnknownModel(f"model '{stored.name}' is not a language model (it is a {stored.format} folder)")
    opts = Options().merged(stored.parameters).merged(options)
    set_threads(opts.num_thread if opts.num_thread > 0 else config.default_threads())
    gguf = GGUFFile(stored.path)
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
