"""Byte-level BPE against Hugging Face `tokenizers` built from the same GGUF vocabulary and merges.

SmolLM2's own pipeline (Digits(individual) + ByteLevel with the GPT-2 regex) is rebuilt in `tokenizers`; the
same vocabulary is also run under the Llama-3 (ignore_merges) and Qwen2 pre-tokenizers against HF's `Split`.
"""

from __future__ import annotations

from typing import Any

import pytest

from camelid.tokenizer import Tokenizer

tokenizers = pytest.importorskip("tokenizers")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

TEXTS = [
    "Hello world", "   leading and trailing   ", "a\n\n\tb", "\n\n\t", "12345678", "1234567 89",
    "don't I'll we've She'S THEY'LL", "café naïve Ångström résumé façade", "大语言模型入门指南", "🦙🚀👍🏽🇫🇷",
    "مرحبا بالعالم", "नमस्ते दुनिया", "x\u0301y", "a\u00a0b\u3000c", "tab\tsep\r\nline", "=====", "x  =  y",
    "http://example.com/a?b=c&d=e", "def f(x):\n    return x**2\n", "1,234.56 $99 50%", "’quotes’ “double”",
    "  \n  \n", "a'b'c", "' '", "'s", "\u200b\u200dzero", "Ⅻ ½ ²", "end with space ", " ", "",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|><|endoftext|>x",
    "<|im_start|><|im_end|>", "Ünïcödé ÀÉÎÕÜ ßæøå ĳ ﬁ", "Ǆemo ǅ ǆ", "The year 2024: 3.14159265358979",
]


def hf_tokenizer(md: dict[str, Any], pre: str) -> Any:
    from tokenizers import AddedToken, Regex, models, pre_tokenizers

    tokens = md["tokenizer.ggml.tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in md["tokenizer.ggml.merges"]]
    hf = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=pre == "llama-bpe"))
    if pre == "smollm":
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        regex = LLAMA3_REGEX if pre == "llama-bpe" else QWEN2_REGEX
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    specials = [t for t, kind in zip(tokens, md["tokenizer.ggml.token_type"]) if kind == 3]
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return hf


@pytest.mark.parametrize("pre", ["smollm", "llama-bpe", "qwen2"])
def test_bpe_matches_hf_tokenizers(smollm2_md: dict[str, Any], pre: str) -> None:
    tok = Tokenizer.from_metadata({**smollm2_md, "tokenizer.ggml.pre": pre})
    hf = hf_tokenizer(smollm2_md, pre)
    for text in TEXTS:
        ref = hf.encode(text, add_special_tokens=False).ids  # HF always splits added tokens: our special=True
        assert tok.encode(text, special=True) == ref, (pre, text)
        if "<|" not in text:
            assert tok.encode(text) == ref, (pre, text)


def test_control_tokens_are_plain_text_without_special(smollm2_tok: Tokenizer) -> None:
    plain = smollm2_tok.encode("<|im_end|>")
    assert len(plain) > 1 and 2 not in plain
    assert smollm2_tok.encode("<|im_end|>", special=True) == [2]
    assert smollm2_tok.decode(plain) == "<|im_end|>"


def test_special_tokens_split_longest_first(smollm2_md: dict[str, Any]) -> None:
    md = dict(smollm2_md)
    tokens = list(md["tokenizer.ggml.tokens"])
    types = list(md["tokenizer.ggml.token_type"])
    # two overlapping user-defined tokens, "at" (short) and "tion" (long): llama.cpp cuts the longer one first,
    # so "ation" becomes "a" + <tion>, although "at" starts further left
    ids = [tokens.index("at"), tokens.index("tion")]
    for i in ids:
        types[i] = 4
    md["tokenizer.ggml.token_type"] = types
    tok = Tokenizer.from_metadata(md)
    out = tok.encode("ation")
    assert out == [tokens.index("a"), ids[1]]
    assert tok.encode("at at") == [ids[0], tokens.index("Ġ"), ids[0]]  # user-defined: split even if special=False
