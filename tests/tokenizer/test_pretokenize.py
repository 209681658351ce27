"""Pre-tokenizer regexes: llama.cpp's collapsed-text emulation against the original regexes run by `regex`.

For the common patterns (GPT-2, Llama-3, Qwen2, Qwen3.5, StarCoder/SmolLM, "default") llama.cpp's splitting is
exactly "matches and gaps of each regex in turn" with true Unicode classes, so the `regex` module is an oracle.
"""

from __future__ import annotations

import random
import warnings
import zlib

import pytest
import regex

from camelid.errors import UnsupportedModel
from camelid.tokenizer.pretokenize import SUPPORTED_PRE, collapse, resolve_pre

GPT2_ORIG = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
ORIGINALS = {
    "gpt-2": [GPT2_ORIG],
    "llama-bpe": [(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+")],
    "qwen2": [(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")],
    "qwen35": [(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
                r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")],
    "smollm": [r"\p{N}", GPT2_ORIG],
    "starcoder": [r"\p{N}", GPT2_ORIG],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2_ORIG, r"\p{N}+", "[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2_ORIG, "[0-9][0-9][0-9]"],
}

POOL = (list("abcXYZ é ñ Å") + list("0123456789") + list(" \t\n\r\n   ") + list("'''sStTmMdDlLrReEvV")
        + list(".,!?;:-_()[]{}<>$+=^~|`@#%&*/\\\"")
        + ["\u00a0", "\u3000", "\x85", "\x0b", "\x0c", "大", "语", "😀", "🇫", "\u0301", "\u093f", "म", "٣", "²", "Ⅻ",
           "½", "€", "©", "\u200b", "\x1c", "ـ", "ǅ", "ʰ", "中", "가", "ก", "\u0e31", "\U0001f9d9"])

FIXED = ["Hello world", "  leading spaces and   multiple   gaps\n\nnew paragraphs\ttabs", "12345678", "1234567",
         "don't I'll we've She'S THEY'LL o'clock", "\n\n\t", "\r\n \r\n", "café naïve résumé Ångström", "   ", " ",
         "a  ", "x\u00a0\u00a0y", "大语言模型入门指南: 什么是大语言模型?", "emoji 🦙🚀 and 👍🏽", "٣٤٥ ²³ ⅫⅣ",
         "def f(x):\n    return x**2  # comment\n", "'''", "'s's", "Hello!!! ... ???", "$100 + 50% = <tag>"]


def reference_split(exprs: list[str], text: str) -> list[str]:
    chunks = [text]
    for expr in exprs:
        pattern = regex.compile(expr)
        new = []
        for chunk in chunks:
            pos = 0
            for m in pattern.finditer(chunk):
                if m.start() > pos:
                    new.append(chunk[pos:m.start()])
                if m.end() > m.start():
                    new.append(m.group())
                pos = m.end()
            if pos < len(chunk):
                new.append(chunk[pos:])
        chunks = new
    return chunks


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_split_matches_original_regexes(name: str) -> None:
    pre = resolve_pre(name)
    rnd = random.Random(zlib.crc32(name.encode()))
    samples = FIXED + ["".join(rnd.choice(POOL) for _ in range(rnd.randint(0, 24))) for _ in range(1500)]
    for text in samples:
        assert pre.split(text) == reference_split(ORIGINALS[name], text), repr(text)


def test_known_splits() -> None:
    assert resolve_pre("gpt-2").split("Hello world  !") == ["Hello", " world", " ", " !"]
    assert resolve_pre("llama3").split("12345678 don'T\n\n x") == ["123", "456", "78", " don", "'T", "\n\n", " x"]
    assert resolve_pre("smollm").split("a 123") == ["a", " ", "1", "2", "3"]
    assert resolve_pre("qwen2").split("12 ab") == ["1", "2", " ab"]
    assert resolve_pre("default").split("a...b 1234") == ["a", "...", "b", " ", "123", "4"]


@pytest.mark.parametrize("name", SUPPORTED_PRE)
def test_every_supported_pre_type_is_lossless(name: str) -> None:
    pre = resolve_pre(name)
    rnd = random.Random(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. re's FutureWarning on ambiguous sets
        for text in FIXED + ["".join(rnd.choice(POOL) for _ in range(rnd.randint(0, 30))) for _ in range(100)]:
            pieces = pre.split(text)
            assert "".join(pieces) == text and all(pieces)


def test_collapsed_quirks_follow_llama_cpp() -> None:
    # non-ASCII whitespace collapses to \v: a regex without \p classes (deepseek-coder's CJK range, which spans
    # U+0800..U+4E00) no longer sees U+3000 as part of that range
    assert collapse("a\u3000é1٣!€") == "a\x0b\xd2" + "1\xd1!\xd5"
    assert resolve_pre("deepseek-coder").split("\u3000©") == ["\u3000©"]
    # GPT-4o's "upper-case" class is [^a-z] among letters, so non-ASCII letters are both upper and lower case
    assert resolve_pre("gpt-4o").split("ÉcoleÉcole Hello") == ["ÉcoleÉcole", " Hello"]


@pytest.mark.parametrize("name", ["kimi-k2", "afmoe", "gemma4", "no-such-pre"])
def test_unsupported_pre_raises(name: str) -> None:
    with pytest.raises(UnsupportedModel, match=name):
        resolve_pre(name)


def test_missing_pre_means_default() -> None:
    assert resolve_pre(None).name == "default" and resolve_pre("").name == "default"
