"""A model made from a Modelfile runs with what it stores: PARAMETERs as request defaults, SYSTEM and MESSAGE ahead
of every chat, and an Ollama (Go) TEMPLATE in place of the GGUF's jinja template."""

from __future__ import annotations

from pathlib import Path

import pytest

import camelid
from camelid.store.create import create
from camelid.tokenizer import render_chat

pytestmark = pytest.mark.slow

CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def test_modelfile_defaults_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm2_path: Path) -> None:
    monkeypatch.setenv("CAMELID_MODELS", str(tmp_path / "models"))
    modelfile = (f"FROM {smollm2_path}\nTEMPLATE \"\"\"{CHATML}\"\"\"\nSYSTEM Answer in one word.\n"
                 "PARAMETER temperature 0\nPARAMETER num_predict 6\nMESSAGE user Hello\nMESSAGE assistant Hi\n")
    create("terse", modelfile)
    llm = camelid.load("terse")
    assert llm.options.temperature == 0.0 and llm.options.num_predict == 6
    conversation = llm.with_defaults([{"role": "user", "content": "Name a colour."}])
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user"]
    jinja = render_chat(llm.gguf.get("tokenizer.chat_template"), conversation, add_generation_prompt=True,
                        bos_token="", eos_token="")
    assert llm.render_chat(conversation) == jinja  # the Go ChatML template renders what the GGUF's jinja does
    answer = llm.chat([{"role": "user", "content": "Name a colour."}])
    text = answer.result()
    assert answer.stats is not None and 1 <= answer.stats.eval_count <= 6 and text.strip()
    own_system = llm.with_defaults([{"role": "system", "content": "Be long."}, {"role": "user", "content": "x"}])
    assert [m["content"] for m in own_system if m["role"] == "system"] == ["Be long."]  # replaces the stored one
