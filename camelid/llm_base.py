"""What every loaded language model offers, whatever runs it: tokens, chat rendering with the stored defaults,
generate/chat returning a `Generation`. `LLM` (camelid.llm) runs the torch model and its batching engine;
`QuickLLM` (camelid.quick) runs a Llama-shaped model on the native kernels alone, without importing torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camelid.engine.options import Options
from camelid.engine.sequence import Done, Piece
from camelid.engine.stats import Stats
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


class BaseLLM:
    """A loaded model's tokenizer, request defaults (`options`) and what the model library stored with it.
    Subclasses implement `generate_ids`."""

    def __init__(self, path: Path, gguf: Any, tokenizer: Any, options: Options, load_duration_ns: int,
                 stored: ResolvedModel | None, n_ctx: int) -> None:
        self.path, self.gguf, self.tokenizer, self.options = path, gguf, tokenizer, options
        # What the model library stored with it (Modelfile SYSTEM, MESSAGE, TEMPLATE): defaults for chat.
        self.name = stored.name if stored else path.name
        self.system = stored.system if stored else None
        self.template = stored.template if stored else None  # an Ollama (Go) template, else the GGUF's jinja one
        self.history = list(stored.messages) if stored else []
        self.load_duration_ns = load_duration_ns
        self.last_stats: Stats | None = None
        self.n_ctx = n_ctx
        self._first_request = True

    # -- tokens -----------------------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
        return self.tokenizer.encode(text, add_bos=add_bos, special=special)

    def detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

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


    def generate_ids(self, ids: list[int], options: Options | None = None) -> Generation:
        raise NotImplementedError


def check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages must be a list of {role, content} objects")
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"message role must be system, user, assistant or tool, got {message.get('role')!r}")




def open_model(name_or_path: Any, report: Any, options: dict[str, Any]) -> tuple[ResolvedModel, Options, Any]:
    """What every load starts with: the model resolved (pulled when needed), its request defaults (stored
    PARAMETERs, then `options`) and its GGUF file. The tokenizer comes after the network (`Tokenizer.
    from_metadata`), so that an unsupported architecture is what a user hears about first."""
    from camelid.errors import UnknownModel
    from camelid.gguf import GGUFFile
    from camelid.store import resolve
    stored = resolve(name_or_path, report=report)
    if stored.path is None:
        raise UnknownModel(f"model '{stored.name}' is not a language model (it is a {stored.format} folder)")
    opts = Options().merged(stored.parameters).merged(options)
    return stored, opts, GGUFFile(stored.path)
