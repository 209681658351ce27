"""Structured output with llguidance: grammars from Ollama's `format`, and constrained decoding that always ends
in JSON valid for the schema, even when the "model" is an adversary emitting random logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from camelid.engine import sampling
from camelid.engine.grammar import Constraint, GrammarError, _Wrapped, grammar_for, ll_tokenizer, token_table
from camelid.engine.sampling import SamplingParams
from camelid.errors import BadRequest
from camelid.tokenizer import Tokenizer

try:
    import jsonschema
except ImportError:  # not a dependency: the hand-written check below covers the schemas used here
    jsonschema = None

MAX_TOKENS = 300

# Every string, number and array is bounded: pure random logits must still finish within MAX_TOKENS.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
    },
    "required": ["name", "age", "role", "tags"],
    "additionalProperties": False,
}
NESTED = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": -5, "maximum": 99999},
        "owner": {
            "type": "object",
            "properties": {
                "login": {"type": "string", "maxLength": 8},
                "admin": {"type": "boolean"},
                "level": {"enum": [1, 2, 3]},
            },
            "required": ["login", "admin"],
            "additionalProperties": False,
        },
        "labels": {"type": "array", "items": {"enum": ["bug", "docs"]}, "minItems": 1, "maxItems": 4},
        "note": {"type": ["string", "null"], "maxLength": 5},
    },
    "required": ["id", "owner", "labels"],
    "additionalProperties": False,
}
# Unbounded strings, integers and extra properties: the adversary is steered to close (see `_run`).
OPEN = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "count": {"type": "integer"}, "items": {"type": "array"}},
    "required": ["title", "count"],
}
BOUNDED = {"person": PERSON, "nested": NESTED}
STEERED: dict[str, Any] = {"json": "json", "open": OPEN}


@pytest.fixture(scope="module")
def smollm2(smollm2_path: Path) -> Tokenizer:
    from camelid.gguf import GGUFFile

    return Tokenizer.from_metadata(GGUFFile(smollm2_path).metadata)


@pytest.fixture(scope="module")
def gemma3(gemma3_path: Path) -> Tokenizer:
    from camelid.gguf import GGUFFile

    return Tokenizer.from_metadata(GGUFFile(gemma3_path).metadata)


# -- helpers ----------------------------------------------------------------------------------------------------

_CLOSERS: dict[int, torch.Tensor] = {}


def _closers(tok: Tokenizer) -> torch.Tensor:
    """1.0 on tokens whose text contains a quote or a closing bracket (cached per tokenizer)."""
    if id(tok) not in _CLOSERS:
        _CLOSERS[id(tok)] = torch.tensor([float(any(c in tok.token_bytes(i) for c in b'"}]'))
                                          for i in range(tok.vocab_size)])
    return _CLOSERS[id(tok)]


def _run(tok: Tokenizer, grammar: str, seed: int, sample: bool, steer: bool,
         params: SamplingParams | None = None) -> tuple[str, bool]:
    """Decode against random logits until EOS or is_done, taking the argmax of the masked logits, or a draw from
    their softmax (Gumbel-max; with `params`, the engine's own sampler). With `steer`, tokens holding '"', '}'
    or ']' get a bias growing with the step, so output the grammar would let run forever (free strings, extra
    keys) closes eventually. Returns (text, ended)."""
    gen = torch.Generator().manual_seed(seed)
    rng = sampling.new_rng(seed)
    c = Constraint(tok, grammar)
    out: list[int] = []
    for step in range(MAX_TOKENS):
        logits = torch.rand(tok.vocab_size, generator=gen) * 10
        if steer:
            logits.add_(_closers(tok), alpha=step / 8)
        masked = c.mask(logits.numpy())
        if params is not None:
            token = sampling.sample(masked, params, out, rng)
        elif sample:
            gumbel = -torch.rand(tok.vocab_size, generator=gen).clamp_(min=1e-20).log_().neg_().log_()
            token = int((torch.from_numpy(masked) + gumbel).argmax())
        else:
            token = int(masked.argmax())
        assert np.isfinite(masked[token])
        c.accept(token)
        if token in tok.eog_ids:
            return tok.decode(out), True
        out.append(token)
        if c.is_done():
            return tok.decode(out), True
    return tok.decode(out), False


def _check(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    """A small JSON-schema check for the keywords used here (type, enum, properties, required,
    additionalProperties, items, min/maxItems, maxLength, minimum/maximum)."""
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if "enum" in schema:
        assert value in schema["enum"] and type(value) in {type(e) for e in schema["enum"]}, path
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds is not None:
        ok = any(isinstance(value, types[k]) if k in types else
                 isinstance(value, int) and not isinstance(value, bool) for k in kinds)
        assert ok, f"{path}: {value!r} is not {kinds}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        assert set(schema.get("required", [])) <= set(value), f"{path}: missing keys in {value!r}"
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), f"{path}: extra keys in {value!r}"
        for key, item in value.items():
            if key in props:
                _check(item, props[key], f"{path}.{key}")
    elif isinstance(value, list):
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)), path
        for i, item in enumerate(value):
            _check(item, schema.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, str):
        assert len(value) <= schema.get("maxLength", len(value)), path
    elif isinstance(value, int) and not isinstance(value, bool):
        assert schema.get("minimum", value) <= value <= schema.get("maximum", value), path


def _validate(text: str, fmt: Any) -> Any:
    schema = {"type": "object"} if fmt == "json" else fmt
    assert text == text.strip() and "\n" not in text, f"not compact: {text!r}"
    value = json.loads(text)
    _check(value, schema)
    if jsonschema is not None:
        jsonschema.validate(value, schema)
    return value


# -- grammar_for --------------------------------------------------------------------------------------------------


def test_grammar_for_formats() -> None:
    assert grammar_for(None) is None
    assert grammar_for("") is None
    assert isinstance(grammar_for("json"), str)
    assert isinstance(grammar_for(PERSON), str)
    assert issubclass(GrammarError, BadRequest)


@pytest.mark.parametrize("fmt, message", [
    ("xml", "format must be"),
    (["json"], "format must be"),
    (True, "format must be"),
    ({"type": "foo"}, "Invalid type: foo"),
    ({"type": "object", "required": "name"}, "Expected array for 'required'"),
    ({"type": "string", "pattern": "(("}, "unclosed group"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum (5) is greater than maximum (1)"),
    ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not exist"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"], "additionalProperties": False}, "'b'"),
])
def test_bad_format_is_one_clear_error(fmt: Any, message: str) -> None:
    with pytest.raises(GrammarError, match="format") as err:
        grammar_for(fmt)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_keywords_are_ignored() -> None:
    assert grammar_for({"type": "object", "properties": {"x": {"type": "string", "format": "my-own"}},
                        "x-vendor": 1}) is not None


# -- the llguidance tokenizer -------------------------------------------------------------------------------------


def test_token_table_marks_special_tokens(smollm2: Tokenizer) -> None:
    table = token_table(smollm2)
    assert len(table) == smollm2.vocab_size
    im_end = smollm2.encode("<|im_end|>", special=True)[0]
    assert table[im_end] == b"\xff<|im_end|>"
    word = smollm2.encode(" hello")[0]
    assert table[word] == b" hello"
    ll = ll_tokenizer(smollm2)
    assert ll is ll_tokenizer(smollm2)  # built once per tokenizer
    assert ll.is_special_token(im_end) and not ll.is_special_token(word)
    assert sorted(ll.eos_tokens) == sorted(smollm2.eog_ids) and ll.eos_token == smollm2.eos_id
    text = '{"name":"Zoë","n":[1,2.5e3,null]}'
    assert ll.tokenize_str(text) == smollm2.encode(text)
    assert ll.decode_bytes(smollm2.encode(text)) == text.encode()


def test_gemma_table_bytes_and_tags(gemma3: Tokenizer) -> None:
    table = token_table(gemma3)
    assert table[gemma3.encode(" x")[0]] == b" x"  # "▁x"
    newline = gemma3.encode("\n")  # a byte token or a user-defined newline token, never "<0x0A>" text
    assert b"".join(table[i] for i in newline) == b"\n"
    image = gemma3.vocab.token_to_id["<start_of_image>"]  # user-defined tag: special, not text
    assert table[image].startswith(b"\xff")
    assert table[gemma3.vocab.token_to_id["<end_of_turn>"]] == b"\xff<end_of_turn>"


def test_space_prefix_tokenize_drops_the_added_space(gemma3: Tokenizer) -> None:
    """SentencePiece models with add_space_prefix encode "hi" as "▁hi"; llguidance needs exactly "hi"."""
    wrapped = _Wrapped(gemma3, token_table(gemma3))
    gemma3.vocab.add_space_prefix = True
    try:
        for text in ("hello world", '{"a":1}', " spaced", "x", "<table>x", "\n"):
            ids = wrapped(text.encode())
            assert b"".join(wrapped.tokens[i] for i in ids) == text.encode(), text
    finally:
        gemma3.vocab.add_space_prefix = False


# -- Constraint ----------------------------------------------------------------------------------------------------


def test_forced_valid_and_invalid_text(smollm2: Tokenizer) -> None:
    c = Constraint(smollm2, grammar_for(PERSON))
    good = '{"name":"Ann","age":42,"role":"guest","tags":["a","b"]}'
    ids = smollm2.encode(good)
    for i, token in enumerate(ids):
        assert not c.is_done()
        assert c.is_accepting() is False
        assert np.isfinite(c.mask(np.zeros(smollm2.vocab_size, np.float32))[token]), smollm2.decode(ids[: i + 1])
        c.accept(token)
    assert c.is_done() and c.is_accepting()
    allowed = np.flatnonzero(np.isfinite(c.mask(np.zeros(smollm2.vocab_size, np.float32)))).tolist()
    assert set(allowed) == smollm2.eog_ids  # only end-of-generation after the closing brace
    c.accept(smollm2.eos_id)

    c = Constraint(smollm2, grammar_for(PERSON))
    with pytest.raises(GrammarError, match="not allowed"):
        for token in smollm2.encode('{"name":"Ann","age":"42"}'):
            c.accept(token)


def test_accept_forbidden_token_raises_and_keeps_state(smollm2: Tokenizer) -> None:
    c = Constraint(smollm2, grammar_for("json"))
    masked = c.mask(np.zeros(smollm2.vocab_size, np.float32))
    assert masked[smollm2.eos_id] == float("-inf")  # cannot end before anything was written
    with pytest.raises(GrammarError, match="not allowed"):
        c.accept(smollm2.eos_id)
    with pytest.raises(GrammarError, match="not allowed"):
        c.accept(smollm2.encode("[")[0])
    with pytest.raises(GrammarError, match="outside the vocabulary"):
        c.accept(smollm2.vocab_size + 3)
    for token in smollm2.encode("{}"):  # still usable after the refusals
        c.accept(token)
    assert c.is_done()
    assert json.loads(smollm2.decode(smollm2.encode("{}"))) == {}


def test_constraint_rejects_broken_grammar(smollm2: Tokenizer) -> None:
    with pytest.raises(GrammarError, match="invalid grammar"):
        Constraint(smollm2, '{"grammars": [{"lark_grammar": "start: undefined_rule"}]}')


def test_mask_pads_wider_logits_and_keeps_input(smollm2: Tokenizer) -> None:
    c = Constraint(smollm2, grammar_for("json"))
    logits = np.random.default_rng(0).standard_normal(smollm2.vocab_size + 70).astype(np.float32)
    before = logits.copy()
    masked = c.mask(logits)
    assert np.array_equal(logits, before)
    assert masked.shape == logits.shape and masked.dtype == logits.dtype
    assert np.isinf(masked[smollm2.vocab_size:]).all()
    finite = np.isfinite(masked)
    assert np.array_equal(masked[finite], logits[finite])
    assert smollm2.decode([int(masked.argmax())]).startswith("{")
    assert np.array_equal(finite[: smollm2.vocab_size], c.allowed())
    with pytest.raises(ValueError):
        c.mask(np.zeros(100, np.float32))


@pytest.mark.parametrize("name", sorted(BOUNDED) + sorted(STEERED))
def test_adversarial_decoding_smollm2(smollm2: Tokenizer, name: str) -> None:
    fmt = BOUNDED.get(name) or STEERED[name]
    grammar = grammar_for(fmt)
    seen = set()
    for seed in range(20):
        for sample in (False, True):
            text, ended = _run(smollm2, grammar, seed, sample, steer=name in STEERED)
            assert ended, f"seed {seed}: no end after {MAX_TOKENS} tokens: {text[:200]!r}"
            _validate(text, fmt)
            seen.add(text)
    assert len(seen) > 20  # the runs really differ


def test_engine_sampler_on_masked_logits(smollm2: Tokenizer) -> None:
    """The engine's sampling chain (penalties, top-k, top-p, min-p, temperature) copes with -inf entries."""
    grammar = grammar_for(NESTED)
    params = SamplingParams(temperature=1.5, top_k=100, top_p=0.95, min_p=0.01, repeat_penalty=1.3)
    for seed in range(3):
        text, ended = _run(smollm2, grammar, seed, sample=True, steer=False, params=params)
        assert ended
        _validate(text, NESTED)


@pytest.mark.parametrize("name", ["person", "nested", "json"])
def test_adversarial_decoding_gemma3(gemma3: Tokenizer, name: str) -> None:
    fmt = BOUNDED.get(name) or STEERED[name]
    grammar = grammar_for(fmt)
    for seed in range(3):
        text, ended = _run(gemma3, grammar, seed, sample=bool(seed % 2), steer=name in STEERED)
        assert ended, f"seed {seed}: no end after {MAX_TOKENS} tokens: {text[:200]!r}"
        _validate(text, fmt)
