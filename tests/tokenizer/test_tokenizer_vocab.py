"""Vocabulary loading: special ids, end-of-generation set, attributes, errors, and construction speed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from camelid.errors import UnsupportedModel
from camelid.tokenizer import Tokenizer
from camelid.tokenizer.vocab import ATTR_CONTROL, ATTR_UNUSED, ATTR_USER_DEFINED

TOKENIZER_KEYS = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                  "tokenizer.ggml.add_bos_token", "tokenizer.chat_template"]


def test_metadata_dict_matches_gguf_reader(smollm2_path: Path, smollm2_md: dict[str, Any]) -> None:
    """The plain dict we build from equals what gguf.GGUFReader reads (strings as str, arrays as lists)."""
    from gguf import GGUFReader

    reader = GGUFReader(smollm2_path)
    for key in TOKENIZER_KEYS:
        assert reader.fields[key].contents() == smollm2_md[key], key


def test_smollm2_specials(smollm2_tok: Tokenizer) -> None:
    tok = smollm2_tok
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.add_bos, tok.add_eos) == (49152, 1, 2, False, False)
    # <|endoftext|> and <|im_end|> by text, <reponame> as llama.cpp's FIM "repo" token, which it also stops on
    assert tok.eog_ids == {0, 2, 4}
    assert tok.vocab.pre is not None and tok.vocab.pre.name == "smollm"


def test_gemma3_specials(gemma3_tok: Tokenizer) -> None:
    tok = gemma3_tok
    assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.add_bos, tok.add_eos) == (262144, 2, 1, True, False)
    assert tok.eot_id == 106 and {1, 106} <= tok.eog_ids  # <eos>, <end_of_turn>
    assert tok.eog_ids == {1, 106, 212}  # llama.cpp also lists "</s>" (here an HTML tag) as end of generation
    attrs = tok.vocab.attrs
    assert attrs[6] & ATTR_UNUSED and attrs[6] & ATTR_CONTROL  # "<unused0>"
    assert attrs[138] == ATTR_USER_DEFINED  # "  " (two spaces) is user-defined: split out even without special


def test_construction_is_fast(gemma3_md: dict[str, Any], smollm2_md: dict[str, Any]) -> None:
    for md in (gemma3_md, smollm2_md):
        start = time.perf_counter()
        Tokenizer.from_metadata(md)
        assert time.perf_counter() - start < 2.0


def test_eog_from_metadata_and_text(smollm2_md: dict[str, Any]) -> None:
    md = {**smollm2_md, "tokenizer.ggml.eot_token_id": 16, "tokenizer.ggml.eos_token_id": 15}
    tok = Tokenizer.from_metadata(md)
    assert tok.eot_id == 16 and tok.eos_id == 15 and {0, 2, 4, 15, 16} <= tok.eog_ids


@pytest.mark.parametrize("change, message", [
    ({"tokenizer.ggml.model": "bert"}, "bert"),
    ({"tokenizer.ggml.model": "t5"}, "t5"),
    ({"tokenizer.ggml.pre": "kimi-k2"}, "kimi-k2"),
    ({"tokenizer.ggml.model": None}, "no tokenizer"),
    ({"tokenizer.ggml.merges": None}, "merges"),
])
def test_unsupported_tokenizers_raise(smollm2_md: dict[str, Any], change: dict, message: str) -> None:
    md = {**smollm2_md, **change}
    md = {k: v for k, v in md.items() if v is not None}
    with pytest.raises(UnsupportedModel, match=message):
        Tokenizer.from_metadata(md)


def test_token_types_default_and_scores_optional(smollm2_md: dict[str, Any]) -> None:
    md = {k: v for k, v in smollm2_md.items() if k not in ("tokenizer.ggml.token_type", "tokenizer.ggml.scores")}
    tok = Tokenizer.from_metadata(md)
    # without types every token is normal, except the EOG-looking ones llama.cpp marks control by their text
    assert tok.encode("Hello world") == [19556, 905]
    assert tok.encode("<|im_start|>", special=True) != [1] and tok.encode("<|im_end|>", special=True) == [2]


def test_phi3_rstrip(smollm2_md: dict[str, Any]) -> None:
    """Phi-3 models get RSTRIP on special tokens (llama.cpp sets it by model name)."""
    md = {**smollm2_md, "general.name": "Phi-3 mini"}
    tok = Tokenizer.from_metadata(md)
    assert tok.encode("<|im_start|>  \n hi", special=True) == [1] + tok.encode("hi")
    plain = Tokenizer.from_metadata(smollm2_md)
    assert plain.encode("<|im_start|>  \n hi", special=True) != tok.encode("<|im_start|>  \n hi", special=True)
