"""Detokenization: round trips, token bytes, llama.cpp's space clean-up, and the streaming decoder."""

from __future__ import annotations

import random
from typing import Any

import pytest

from camelid.tokenizer import IncrementalDecoder, Tokenizer
from camelid.tokenizer.tokenizer import clean_spaces

MODELS = ["smollm2:135m", "gemma3:270m"]
ROUND_TRIP = [
    "Hello world", "  leading spaces and   multiple   gaps\n\nnew paragraphs\ttabs", "12345678",
    "don't I'll we've", "\n\n\t", "café naïve résumé Ångström", "大语言模型入门指南: 什么是大语言模型?",
    "emoji 🦙🚀👍🏽🇫🇷 mixed", "مرحبا بالعالم", "नमस्ते दुनिया", "def f(x):\n    return x**2\n", " ", "",
    "a\u00a0b\u3000c", "x\u0301", "trailing space ", "Hello , world . It 's",
]
MULTIBYTE = ["🦙🚀👍🏽🇫🇷🧙‍♂️", "大语言模型入门指南: 什么是大语言模型?", "日本語のテキスト、한국어 텍스트", "a🦙b大c",
             "Ωμέγα ∑∫√ ≠ ≤ ≥ → ⇒ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚"]


def stream(tok: Tokenizer, ids: list[int], skip_special: bool = True) -> list[str]:
    dec = IncrementalDecoder(tok, skip_special=skip_special)
    pieces = [dec.add(i) for i in ids]
    pieces.append(dec.flush())
    return pieces


@pytest.mark.parametrize("model", MODELS)
def test_round_trip(model: str, tokenizer) -> None:
    tok = tokenizer(model)
    for text in ROUND_TRIP + MULTIBYTE:
        assert tok.decode(tok.encode(text)) == text
        assert tok.decode(tok.encode(text, add_bos=True, special=True)) == text
        assert b"".join(tok.token_bytes(i) for i in tok.encode(text)) == text.encode()


def test_token_bytes(smollm2_tok: Tokenizer, gemma3_tok: Tokenizer) -> None:
    s = smollm2_tok
    assert s.token_bytes(s.vocab.token_to_id["Ġthe"]) == b" the"
    assert s.token_bytes(s.vocab.token_to_id["Ċ"]) == b"\n"
    assert s.token_bytes(2) == b"" and s.piece(2, special=True) == b"<|im_end|>"
    g = gemma3_tok
    assert g.token_bytes(g.vocab.token_to_id["\u2581the"]) == b" the"
    assert g.token_bytes(g.vocab.token_to_id["<0x0A>"]) == b"\n"
    assert g.token_bytes(g.vocab.token_to_id["<0xF0>"]) == b"\xf0"
    assert g.token_bytes(g.vocab.token_to_id["\t\t"]) == b"\t\t"  # user-defined: rendered as is
    assert g.token_bytes(106) == b"" and g.piece(106, special=True) == b"<end_of_turn>"


def test_decode_skip_special(smollm2_tok: Tokenizer, gemma3_tok: Tokenizer) -> None:
    ids = smollm2_tok.encode("<|im_start|>user\nHi<|im_end|>", special=True)
    assert smollm2_tok.decode(ids) == "user\nHi"
    assert smollm2_tok.decode(ids, skip_special=False) == "<|im_start|>user\nHi<|im_end|>"
    ids = gemma3_tok.encode("<start_of_turn>user\nHi<end_of_turn>", add_bos=True, special=True)
    assert ids[:2] == [2, 105] and ids[-1] == 106
    assert gemma3_tok.decode(ids) == "user\nHi"
    assert gemma3_tok.decode(ids, skip_special=False) == "<bos><start_of_turn>user\nHi<end_of_turn>"


def test_invalid_utf8_becomes_replacement(gemma3_tok: Tokenizer) -> None:
    ids = gemma3_tok.encode("🦙")
    assert len(ids) == 4  # byte fallback: one token per UTF-8 byte
    assert gemma3_tok.decode(ids[:2]) == "\ufffd"
    assert gemma3_tok.decode(ids) == "🦙"


def test_clean_spaces_passes() -> None:
    assert clean_spaces(b"Hello , world . Yes ! Why ?") == b"Hello, world. Yes! Why?"
    assert clean_spaces(b"it ' s") == b"it's"
    assert clean_spaces(b"I 'm we 're you 've he 's") == b"I'm we're you've he's"
    assert clean_spaces(b"don 't I 'll he 'd") == b"don 't I 'll he 'd"  # llama.cpp leaves these
    assert clean_spaces(b" .") == b"." and clean_spaces(b"a") == b"a" and clean_spaces(b"") == b""
    assert clean_spaces(b"a ' ' b") == b"a'' b"


def test_clean_spaces_applies_to_gpt2_style_vocabularies(smollm2_md: dict[str, Any], smollm2_tok: Tokenizer) -> None:
    gpt2 = Tokenizer.from_metadata({**smollm2_md, "tokenizer.ggml.pre": "gpt-2"})
    assert gpt2.clean_spaces and not smollm2_tok.clean_spaces  # smollm disables it, as in llama.cpp
    ids = smollm2_tok.encode("Hello , world . I 'm")
    assert gpt2.decode(ids) == "Hello, world. I'm"
    assert smollm2_tok.decode(ids) == "Hello , world . I 'm"


def test_space_prefix_is_removed_from_the_first_token(gemma3_md: dict[str, Any]) -> None:
    tok = Tokenizer.from_metadata({**gemma3_md, "tokenizer.ggml.add_space_prefix": True})
    ids = tok.encode("Hello world")
    assert tok.token_text(ids[0]) == "\u2581Hello"  # SPM's phantom space
    assert tok.decode(ids) == "Hello world"
    assert "".join(stream(tok, ids)) == "Hello world"
    # as llama.cpp: the leading-space removal applies to the first token only, here BOS (which renders nothing)
    ids = tok.encode("Hello world", add_bos=True)
    assert tok.decode(ids) == " Hello world"
    assert "".join(stream(tok, ids)) == " Hello world"


@pytest.mark.parametrize("model", MODELS)
def test_stream_never_splits_characters(model: str, tokenizer) -> None:
    tok = tokenizer(model)
    for text in MULTIBYTE + ROUND_TRIP:
        ids = tok.encode(text)
        pieces = stream(tok, ids)
        assert "".join(pieces) == tok.decode(ids) == text
        assert not any("\ufffd" in p for p in pieces), pieces
    ids = tok.encode("🦙🚀")
    assert len(ids) > 2  # the emoji really are spread over several tokens
    assert [p for p in stream(tok, ids) if p] == ["🦙", "🚀"]


@pytest.mark.parametrize("model", MODELS)
def test_stream_with_special_tokens(model: str, tokenizer) -> None:
    tok = tokenizer(model)
    text = "<|im_start|>user\nHi 🦙<|im_end|>\n" if model.startswith("smollm") else "<start_of_turn>user\nHi 🦙"
    ids = tok.encode(text, add_bos=True, special=True)
    for skip in (True, False):
        assert "".join(stream(tok, ids, skip_special=skip)) == tok.decode(ids, skip_special=skip)


def random_ids(tok: Tokenizer, byte_like: list[int], rnd: random.Random, n: int) -> list[int]:
    """Random ids, 40 % of them single-byte tokens so that partial UTF-8 sequences are common."""
    return [rnd.choice(byte_like) if rnd.random() < 0.4 else rnd.randrange(tok.vocab_size) for _ in range(n)]


@pytest.mark.parametrize("variant", ["smollm2", "gemma3", "gpt2-clean-spaces", "spm-space-prefix"])
def test_stream_equals_decode_on_random_ids(variant: str, smollm2_md, gemma3_md, smollm2_tok, gemma3_tok) -> None:
    tok = {
        "smollm2": lambda: smollm2_tok,
        "gemma3": lambda: gemma3_tok,
        "gpt2-clean-spaces": lambda: Tokenizer.from_metadata({**smollm2_md, "tokenizer.ggml.pre": "gpt-2"}),
        "spm-space-prefix": lambda: Tokenizer.from_metadata({**gemma3_md, "tokenizer.ggml.add_space_prefix": True}),
    }[variant]()
    rnd = random.Random(1234)
    byte_like = [i for i in range(tok.vocab_size) if tok.is_byte(i) or len(tok.token_text(i)) == 1]
    for _ in range(60):
        ids = random_ids(tok, byte_like, rnd, rnd.randint(1, 40))
        if variant == "gpt2-clean-spaces":  # sprinkle the tokens the clean-up passes look at
            ids += [tok.encode(s)[0] for s in (" ", "'", "s", ".", ",", "re", "?")]
            rnd.shuffle(ids)
        for skip in (True, False):
            assert "".join(stream(tok, ids, skip)) == tok.decode(ids, skip_special=skip), ids
