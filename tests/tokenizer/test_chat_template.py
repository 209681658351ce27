"""Chat templates: SmolLM2's (from its GGUF), Gemma 3's (HF tokenizer_config; this GGUF has none), ChatML fallback,
HF helpers, and the sandbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from camelid.errors import BadRequest
from camelid.tokenizer import CHATML_TEMPLATE, Tokenizer, render_chat

# google/gemma-3-*-it chat template (tokenizer_config.json), used when a Gemma 3 GGUF carries no template
GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

CONVERSATION = [
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello, how can I help?"},
    {"role": "user", "content": "Are there any aliens on earth?"},
]


def test_smollm2_template_from_metadata(smollm2_md: dict[str, Any], smollm2_tok: Tokenizer) -> None:
    template = smollm2_md["tokenizer.chat_template"]
    text = render_chat(template, CONVERSATION[2:])
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                    "<|im_end|>\n<|im_start|>user\nAre there any aliens on earth?<|im_end|>\n<|im_start|>assistant\n")
    no_prompt = render_chat(template, CONVERSATION[2:], add_generation_prompt=False)
    assert text == no_prompt + "<|im_start|>assistant\n"
    with_system = render_chat(template, [{"role": "system", "content": "Be brief."}, *CONVERSATION])
    assert with_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n")
    ids = smollm2_tok.encode(text, add_bos=smollm2_tok.add_bos, special=True)
    assert ids[0] == 1 and ids[-3:] == smollm2_tok.encode("<|im_start|>assistant\n", special=True)[-3:]
    assert ids.count(1) == 3 and ids.count(2) == 2  # <|im_start|> x3, <|im_end|> x2 as single tokens


def test_gemma3_template(gemma3_tok: Tokenizer) -> None:
    bos = gemma3_tok.decode([gemma3_tok.bos_id], skip_special=False)
    text = render_chat(GEMMA3_TEMPLATE, [{"role": "system", "content": "Be brief."}, *CONVERSATION], bos_token=bos)
    assert text == ("<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n"
                    "<start_of_turn>model\nHello, how can I help?<end_of_turn>\n"
                    "<start_of_turn>user\nAre there any aliens on earth?<end_of_turn>\n<start_of_turn>model\n")
    ids = gemma3_tok.encode(text, add_bos=True, special=True)
    assert ids[:3] == [2, 2, 105]  # the template writes <bos> and the tokenizer adds one: callers drop one
    assert ids[-3:] == [105, 4368, 107] and ids.count(106) == 3
    parts = render_chat(GEMMA3_TEMPLATE, [{"role": "user", "content": [{"type": "text", "text": " Hi "}]}],
                        add_generation_prompt=False)
    assert parts == "<start_of_turn>user\nHi<end_of_turn>\n"


def test_raise_exception_becomes_bad_request() -> None:
    with pytest.raises(BadRequest, match="roles must alternate"):
        render_chat(GEMMA3_TEMPLATE, [{"role": "assistant", "content": "first"}])


def test_chatml_fallback() -> None:
    text = render_chat(None, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert render_chat(None, [{"role": "user", "content": "U"}], add_generation_prompt=False) == \
        "<|im_start|>user\nU<|im_end|>\n"
    parts = [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]
    assert render_chat(CHATML_TEMPLATE, [{"role": "user", "content": parts}], add_generation_prompt=False) == \
        "<|im_start|>user\nab<|im_end|>\n"


def test_hf_helpers() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Météo",
                                               "parameters": {"type": "object", "properties": {}}}}]
    template = ("{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}|{{ strftime_now('%Y') | length }}|"
                "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}|"
                "{% generation %}{{ eos_token }}{% endgeneration %}|{{ custom }}")
    text = render_chat(template, CONVERSATION, tools=tools, eos_token="</s>", custom=42)
    first, second, year, loop, gen, custom = text.split("|")
    assert first == json.dumps(tools, ensure_ascii=False) and "Météo" in first
    assert second == json.dumps(tools[0], ensure_ascii=False, indent=2)
    assert year == "4" and loop == "Hi!" and gen == "</s>" and custom == "42"


def test_trim_and_lstrip_blocks() -> None:
    template = "{% for m in messages %}\n    {% if m.role %}\n[{{ m.content }}]\n    {% endif %}\n{% endfor %}"
    assert render_chat(template, CONVERSATION[:2]) == "[Hi!]\n[Hello, how can I help?]\n"


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ messages.append({'role': 'user'}) }}",
    "{{ (1).__class__.__base__.__subclasses__() }}",
])
def test_sandbox_blocks_unsafe_access(template: str) -> None:
    with pytest.raises(BadRequest, match="unsafe|chat template"):
        render_chat(template, [{"role": "user", "content": "x"}])


def test_sandbox_does_not_leak_dunder_attributes() -> None:
    assert render_chat("{{ ''.__class__ }}", []) == ""


@pytest.mark.parametrize("template, message", [
    ("{% for m in messages %}", "syntax error"),
    ("{{ messages[5]['content'] + 1 }}", "chat template"),
    ("{{ 1 / 0 }}", "ZeroDivisionError"),
])
def test_template_errors_become_bad_request(template: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        render_chat(template, [{"role": "user", "content": "x"}])


@pytest.mark.parametrize("template, message", [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loops more than"),
    ("{{ 'x' * 3000000000 }}", "a value of 3000000000 items"),
    ("{{ ([0] * 400000000)|length }}", "a value of 400000000 items"),
    ("{{ '%0900000000d' % 1 }}", "a format width of 900000000"),
    ("{{ ''|center(900000000) }}", "a filter argument of 900000000"),
    ("{{ 10 ** (10 ** 8) }}", "a power of about"),
])
def test_hostile_templates_are_refused_quickly(template: str, message: str) -> None:
    """A template ships with the model file: one that would loop for hours or build gigabytes is refused before it
    does (each of these took from seconds to forever, or gigabytes of memory, without the bounds)."""
    import time

    start = time.perf_counter()
    with pytest.raises(BadRequest, match=message):
        render_chat(template, [{"role": "user", "content": "x"}])
    assert time.perf_counter() - start < 2.0


def test_bounded_templates_still_render_ordinary_work() -> None:
    template = ("{% for i in range(3) %}{{ '-' * 4 }}{{ '%5d' % i }}{% endfor %}{{ 'ab'|center(6) }}{{ 2 ** 10 }}"
                "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert render_chat(template, [{"role": "user", "content": "x"}]) == (
        "----    0----    1----    2  ab  1024x")
    budget = "{% for i in range(9) %}{% for j in range(100000) %}{% endfor %}{% endfor %}ok"
    assert render_chat(budget, []) == "ok"  # 900 009 loop items: within the budget, each rendering anew
    assert render_chat(budget, []) == "ok"
