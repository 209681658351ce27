"""Acceptance A: token ids identical to llama.cpp's (../shared/golden, produced by llama-cpp-python 0.3.36).

Variants, determined from the data:
- `ids`: encode(text) — no BOS, control tokens as plain text;
- `ids_special`: encode(text, special=True);
- `ids_with_bos`: encode(text, add_bos=True, special=True) — BOS only where the metadata says so, and the oracle
  parsed special tokens here too (SmolLM2's "<|im_start|>user\\nHi<|im_end|>" gives [1, 4093, 198, 26843, 2]);
- `prompts[].ids`: encode(prompt, add_bos=True, special=True).
"""

from __future__ import annotations

import pytest

MODELS = ["smollm2:135m", "gemma3:270m"]

VARIANTS = {
    "ids": {},
    "ids_special": {"special": True},
    "ids_with_bos": {"add_bos": True, "special": True},
}


@pytest.mark.parametrize("model", MODELS)
def test_tokenize_cases_match_llama_cpp(model: str, golden, tokenizer) -> None:
    tok = tokenizer(model)
    cases = golden(model)["tokenize"]
    failures = []
    for case in cases:
        for key, kwargs in VARIANTS.items():
            got = tok.encode(case["text"], **kwargs)
            if got != case[key]:
                failures.append(f"{key} {case['text']!r}: got {got}, llama.cpp {case[key]}")
    checked = len(cases) * len(VARIANTS)
    print(f"\n{model}: {checked - len(failures)}/{checked} golden tokenizations identical")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("model", MODELS)
def test_prompts_match_llama_cpp(model: str, golden, tokenizer) -> None:
    tok = tokenizer(model)
    prompts = golden(model)["prompts"]
    for prompt in prompts:
        assert tok.encode(prompt["prompt"], add_bos=True, special=True) == prompt["ids"], prompt["prompt"]
    print(f"\n{model}: {len(prompts)}/{len(prompts)} golden prompts identical")


@pytest.mark.parametrize("model", MODELS)
def test_golden_ids_decode_back(model: str, golden, tokenizer) -> None:
    tok = tokenizer(model)
    for case in golden(model)["tokenize"]:
        assert tok.decode(case["ids"]) == case["text"]
        assert tok.decode(case["ids_special"], skip_special=False) == case["text"]
    for prompt in golden(model)["prompts"]:
        text = tok.decode(prompt["ids"], skip_special=False)
        bos = tok.token_text(tok.bos_id) if tok.add_bos else ""
        assert text == bos + prompt["prompt"]


def test_bos_follows_metadata(tokenizer) -> None:
    smollm2, gemma3 = tokenizer("smollm2:135m"), tokenizer("gemma3:270m")
    assert (smollm2.add_bos, smollm2.bos_id) == (False, 1)
    assert smollm2.encode("a", add_bos=True) == smollm2.encode("a")
    assert (gemma3.add_bos, gemma3.bos_id) == (True, 2)
    assert gemma3.encode("", add_bos=True) == [2]
    assert gemma3.encode("a", add_bos=True)[0] == 2 and gemma3.encode("a")[0] != 2
