"""Structured output: constrain one sequence's tokens to a JSON schema (Ollama ``format``) with llguidance.

- `grammar_for(format)` turns Ollama's ``format`` ("json" or a JSON-schema object) into an llguidance grammar
  string (or None for unconstrained output); a bad schema raises `GrammarError` with llguidance's message.
- `Constraint(tokenizer, grammar)` tracks one sequence: `mask(logits)` puts -inf on every token the grammar
  forbids next, `accept(token)` advances it, `is_done()` says the output is complete (stop generating).

JSON grammars are compact: no whitespace between tokens (``{"a":1,"b":[2,3]}``), so a model cannot stall by
emitting endless spaces or newlines. The llguidance tokenizer (every token's bytes, built once per camelid
`Tokenizer` and cached) is the slow part; after that a mask costs tens of microseconds.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import llguidance
import numpy as np

from camelid.errors import BadRequest
from camelid.tokenizer import Tokenizer
from camelid.tokenizer.vocab import SPM

NEG_INF = float("-inf")

# "whitespace_flexible": False forbids whitespace between JSON tokens (it would otherwise be unbounded);
# "lenient" ignores schema keywords llguidance does not implement (as Ollama does) instead of failing.
_JSON_DEFAULTS: dict[str, Any] = {"lenient": True}
_JSON_OVERRIDES: dict[str, Any] = {"whitespace_flexible": False}
_LIMITS = llguidance.LLParserLimits(verbose_errors=False)  # errors without parser state and grammar dumps
_SPECIAL_MARKER = b"\xff"  # llguidance's prefix for special tokens: never matched as text by a grammar


class GrammarError(BadRequest):
    """The requested output format is not a usable grammar, or a token broke it."""


def grammar_for(format: str | dict[str, Any] | None) -> str | None:
    """llguidance grammar for Ollama's ``format``: None or "" → None (free text); "json" → any JSON object;
    a dict → that JSON schema. Anything else, or a schema llguidance rejects, raises `GrammarError`."""
    if format is None or format == "":
        return None
    if format == "json":
        schema: Any = {"type": "object"}
    elif isinstance(format, dict):
        schema = format
    else:
        raise GrammarError(f'format must be "json" or a JSON schema object, not {format!r:.80}')
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_DEFAULTS,
                                                                overrides=_JSON_OVERRIDES)
    except (ValueError, TypeError) as err:  # not a JSON-serialisable object
        raise GrammarError(f"invalid JSON schema in format: {err}") from None
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise GrammarError(f"invalid JSON schema in format: {_one_line(messages[0] if messages else '?')}")
    return grammar


def tool_call_grammar(tools: list[dict[str, Any]], name: str | None = None) -> str:
    """A grammar that forces one Hermes-style call of an offered tool (OpenAI's ``tool_choice`` "required", or a
    named function): ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`` with the arguments
    following that tool's parameter schema. `camelid.engine.tools.parse_tool_calls` reads it back."""
    choices = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise GrammarError("each tool needs a function with a name")
        if name is not None and function["name"] != name:
            continue
        parameters = function.get("parameters") or {"type": "object"}
        choices.append({"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                        "properties": {"name": {"const": function["name"]}, "arguments": parameters}})
    if not choices:
        raise GrammarError(f"tool_choice names {name!r}, which is not among the tools")
    schema = {"anyOf": choices, "x-guidance": {**_JSON_DEFAULTS, **_JSON_OVERRIDES}}
    import json

    lark = 'start: "<tool_call>\\n" call "\\n</tool_call>"\ncall: %json ' + json.dumps(schema)
    try:
        grammar = llguidance.grammar_from("lark", lark)
    except ValueError as err:
        raise GrammarError(f"the tools' parameter schemas are not usable: {_one_line(str(err))}") from None
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise GrammarError(f"the tools' parameter schemas are not usable: {_one_line(messages[0] if messages else '?')}")
    return grammar


# -- the llguidance tokenizer of a camelid Tokenizer ------------------------------------------------------------

_CACHE: weakref.WeakKeyDictionary[Tokenizer, llguidance.LLTokenizer] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def ll_tokenizer(tokenizer: Tokenizer) -> llguidance.LLTokenizer:
    """The llguidance tokenizer for `tokenizer`, built on first use (~0.1-0.5 s) and cached while it lives."""
    with _CACHE_LOCK:
        cached = _CACHE.get(tokenizer)
        if cached is None:
            cached = _CACHE[tokenizer] = _build_ll_tokenizer(tokenizer)
        return cached


def token_table(tokenizer: Tokenizer) -> list[bytes]:
    """Each token's bytes as llguidance wants them: the text it decodes to, or 0xFF + its name for special tokens
    (control, unknown, end-of-generation, and user-defined ``<...>`` tags such as Gemma's ``<start_of_image>``)."""
    out: list[bytes] = []
    eog = tokenizer.eog_ids
    for i in range(tokenizer.vocab_size):
        if tokenizer.is_control(i) or i in eog or (tokenizer.is_user_defined(i) and _is_tag(tokenizer.token_text(i))):
            out.append(_SPECIAL_MARKER + tokenizer.token_text(i).encode("utf-8", "surrogateescape"))
        else:
            out.append(tokenizer.token_bytes(i))
    return out


def _is_tag(text: str) -> bool:
    return text.startswith("<") and text.endswith(">")


class _Wrapped:
    """The duck-typed object `llguidance.TokenizerWrapper` reads (tokens, ids, and a bytes -> ids callable)."""

    def __init__(self, tokenizer: Tokenizer, tokens: list[bytes]) -> None:
        self.tokenizer = tokenizer
        self.tokens = tokens
        self.eos_token_id = tokenizer.eos_id if tokenizer.eos_id is not None else min(tokenizer.eog_ids, default=0)
        self.bos_token_id = tokenizer.bos_id
        self.special_token_ids = [i for i, t in enumerate(tokens) if t.startswith(_SPECIAL_MARKER)]

    def __call__(self, text: bytes) -> list[int]:
        ids = self.tokenizer.encode(text.decode("utf-8", errors="replace"))
        if self.tokenizer.vocab.kind == SPM and self.tokenizer.add_space_prefix and ids:
            ids = self._without_space_prefix(ids, text)
        return ids

    def _without_space_prefix(self, ids: list[int], text: bytes) -> list[int]:
        """SentencePiece models that prefix a space ("hi" -> "▁hi", also after special tokens): llguidance needs
        tokens of exactly `text`. Re-map the first token; if that is not enough, spell the text in byte tokens."""
        first = self.tokens[ids[0]]
        if first.startswith(b" "):
            vocab = self.tokenizer.vocab
            alt = vocab.token_to_id.get(vocab.texts[ids[0]][1:])
            if len(first) == 1:
                ids = ids[1:]
            elif alt is not None and self.tokens[alt] == first[1:]:
                ids = [alt, *ids[1:]]
        if b"".join(self.tokens[i] for i in ids) == text:
            return ids
        table = self.tokenizer.vocab.byte_ids
        byte_ids = [table[b] for b in text] if len(table) == 256 else [None]
        return ids if None in byte_ids else byte_ids  # type: ignore[return-value]


def _build_ll_tokenizer(tokenizer: Tokenizer) -> llguidance.LLTokenizer:
    wrapped = _Wrapped(tokenizer, token_table(tokenizer))
    eos = sorted(tokenizer.eog_ids) or [wrapped.eos_token_id]
    if wrapped.eos_token_id in eos:  # the first one is llguidance's "the" EOS token
        eos.remove(wrapped.eos_token_id)
        eos.insert(0, wrapped.eos_token_id)
    return llguidance.LLTokenizer(llguidance.TokenizerWrapper(wrapped), n_vocab=tokenizer.vocab_size, eos_token=eos)


# -- one constrained sequence ---------------------------------------------------------------------------------


class Constraint:
    """Grammar state of one sequence. Per step: ``logits = c.mask(logits)``, sample, ``c.accept(token)``, and stop
    when the token is end-of-generation or ``c.is_done()``. Any end-of-generation token of the model counts as
    EOS and is allowed only where the grammar may end."""

    def __init__(self, tokenizer: Tokenizer, grammar: str) -> None:
        self.tokenizer = tokenizer
        self._ll = ll_tokenizer(tokenizer)
        self._matcher = llguidance.LLMatcher(self._ll, grammar, log_level=0, limits=_LIMITS)
        if self._matcher.is_error():
            raise GrammarError(f"invalid grammar: {_one_line(self._matcher.get_error())}")
        self.vocab_size: int = self._ll.vocab_size
        self._eos = frozenset(self._ll.eos_tokens)
        self._bits = np.zeros((self.vocab_size + 31) // 32, dtype=np.int32)

    def allowed(self) -> np.ndarray:
        """Bool array [vocab_size]: the tokens the grammar allows next."""
        packed = self._compute()
        return np.unpackbits(packed, bitorder="little")[: self.vocab_size].view(np.bool_)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """`logits` [n >= vocab_size] float32 with -inf on every token the grammar forbids now (a new array;
        entries past the tokenizer's vocabulary, e.g. padding of the output layer, are forbidden too)."""
        n = logits.shape[-1]
        if logits.ndim != 1 or n < self.vocab_size:
            raise ValueError(f"expected logits of shape [>= {self.vocab_size}], got {tuple(logits.shape)}")
        # one lookup per mask byte (8 tokens) into a 256x8 table of 0/-inf: branch-free
        bias = _BIAS_TABLE[self._compute()].reshape(-1)
        out = np.full(n, NEG_INF, dtype=np.float32)
        m = min(n, bias.size)
        np.add(logits[:m], bias[:m], out=out[:m])
        return out

    def _compute(self) -> np.ndarray:
        """The next-token bitmask as bytes (bit k of byte j = token 8j+k; padding bits are zero)."""
        self._check()
        self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        self._check()
        return self._bits.view(np.uint8)

    def accept(self, token: int) -> None:
        """Advance past `token`; a token the grammar does not allow raises `GrammarError` (state unchanged)."""
        self._check()
        token = int(token)
        # validate_tokens refuses EOS once the grammar has stopped, yet EOS is what ends it there
        is_end = token in self._eos and self._matcher.is_accepting()
        if not is_end and (not 0 <= token < self.vocab_size or self._matcher.validate_tokens([token]) != 1):
            raise GrammarError(f"token {token} ({self._describe(token)}) is not allowed by the output format here")
        if not self._matcher.consume_token(token):
            raise GrammarError(f"token {token} broke the output format: {_one_line(self._matcher.get_error())}")

    def is_done(self) -> bool:
        """True when the output is complete and no further token (other than EOS) may follow."""
        return self._matcher.is_stopped() and not self._matcher.is_error()

    def is_accepting(self) -> bool:
        """True when the output so far is complete (EOS allowed), even if it could also go on."""
        return self._matcher.is_accepting()

    def _check(self) -> None:
        if self._matcher.is_error():
            raise GrammarError(f"output format failed: {_one_line(self._matcher.get_error())}")

    def _describe(self, token: int) -> str:
        if not 0 <= token < self.vocab_size:
            return "outside the vocabulary"
        return repr(self.tokenizer.token_text(token))


# [256, 8]: row b holds 0 where bit k of b is set (token allowed) and -inf elsewhere
_BIAS_TABLE = np.where((np.arange(256)[:, None] >> np.arange(8)) & 1, 0.0, NEG_INF).astype(np.float32)


def _one_line(message: str) -> str:
    return " ".join(message.split())
