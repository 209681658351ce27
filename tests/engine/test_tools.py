"""Tool calls read back from generated text: each template family's format, what stays content, streaming
hold-back, and the Ollama / OpenAI output shapes."""

from __future__ import annotations

import json
import random
import re

import pytest

from camelid.engine.tools import (
    STYLES,
    ToolCall,
    may_be_tool_call,
    new_call_id,
    ollama_tool_calls,
    openai_tool_calls,
    parse_tool_calls,
    tool_format,
)


def tool(name: str, **properties: str) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": f"{name} tool",
        "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in properties.items()}}}}


TOOLS = [tool("get_weather", city="string", days="integer"), tool("get_time")]
PARIS = {"city": "Paris"}
OPENAI_ID = re.compile(r"call_[a-z0-9]{24}")


def pairs(calls: list[ToolCall]) -> list[tuple[str, dict]]:
    return [(c.name, c.arguments) for c in calls]


def parse(text: str, style: str, tools: list[dict] | None = None) -> tuple[str, list[tuple[str, dict]]]:
    content, calls = parse_tool_calls(text, TOOLS if tools is None else tools, style)
    return content, pairs(calls)


# ------------------------------------------------------------------------------------------- tool_format

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.mark.parametrize(("template", "style"), [
    ('{%- if tools %}<tools></tools><tool_call>\n{"name": <function-name>, "arguments": <args>}\n</tool_call>',
     "hermes"),
    ("{{- if .Tools }}<|im_start|>system\n<tools>{{ range .Tools }}{{ . }}{{ end }}</tools> <tool_call>", "hermes"),
    (SMOLLM2_TEMPLATE, "hermes"),
    ("<|start_header_id|>ipython<|end_header_id|>{%- if builtin_tools %}<|python_tag|>{{ tool_call.name }}",
     "llama3"),
    ("{%- if message.role == 'ipython' or message.role == 'tool' %}<|start_header_id|>", "llama3"),
    ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{{ content }}<|eot_id|>", "llama3"),
    ("{%- if tools %}[AVAILABLE_TOOLS] {{ tools|tojson }}[/AVAILABLE_TOOLS]{% endif %}[TOOL_CALLS] [", "mistral"),
    ("{{ bos_token }}<start_of_turn>user\n{{ content }}<end_of_turn>\n<start_of_turn>model\n", "generic"),
    (None, "generic"),
    ("", "generic"),
])
def test_tool_format(template: str | None, style: str) -> None:
    assert tool_format(template) == style


# ------------------------------------------------------------------------------------------------ hermes


def test_hermes_one_call_after_content() -> None:
    text = 'Let me check.\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert parse(text, "hermes") == ("Let me check.", [("get_weather", PARIS)])


def test_hermes_several_calls_string_arguments_and_parameters_key() -> None:
    text = ('<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\", \\"days\\": 2}"}\n'
            '</tool_call>\n<tool_call>\n{"name": "get_time", "parameters": {}}\n</tool_call>\n'
            '<tool_call>{"name": "get_time"}</tool_call>')
    assert parse(text, "hermes") == ("", [("get_weather", {"city": "Paris", "days": 2}), ("get_time", {}),
                                          ("get_time", {})])


def test_hermes_array_in_one_block_smollm2() -> None:
    text = ('<tool_call>[{"name": "get_weather", "arguments": {"city": "Paris"}}, '
            '{"name": "get_time", "arguments": {}}]</tool_call>')
    assert parse(text, "hermes") == ("", [("get_weather", PARIS), ("get_time", {})])


def test_hermes_xml_function_body_typed_by_schema() -> None:  # Qwen3-Coder
    text = ("<tool_call>\n<function=get_weather>\n<parameter=city>\n1984\n</parameter>\n"
            "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>")
    assert parse(text, "hermes") == ("", [("get_weather", {"city": "1984", "days": 3})])


def test_hermes_unclosed_last_block() -> None:
    complete = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert parse(complete, "hermes") == ("", [("get_weather", PARIS)])
    cut_short = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'
    assert parse(cut_short, "hermes") == (cut_short, [])


def test_hermes_bad_block_stays_while_good_one_is_taken() -> None:
    text = ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    assert parse(text, "hermes") == ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', [("get_time", {})])


# ------------------------------------------------------------------------------------------------ llama3


@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '<|python_tag|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|eom_id|>',
    '  {"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}\n',
    '<function=get_weather>{"city": "Paris"}</function>',
])
def test_llama3_one_call(text: str) -> None:
    assert parse(text, "llama3") == ("", [("get_weather", PARIS)])


@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "get_time", "parameters": {}}',
    '{"name": "get_weather", "parameters": {"city": "Paris"}}\n{"name": "get_time", "parameters": {}}',
    '[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", "parameters": {}}]',
    '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}};{"name": "get_time", "parameters": {}}',
])
def test_llama3_several_calls(text: str) -> None:
    assert parse(text, "llama3") == ("", [("get_weather", PARIS), ("get_time", {})])


def test_llama3_content_before_and_string_arguments() -> None:
    text = 'Checking the weather.<|python_tag|>{"name": "get_weather", "parameters": "{\\"city\\": \\"Paris\\"}"}'
    assert parse(text, "llama3") == ("Checking the weather.", [("get_weather", PARIS)])


def test_llama3_builtin_tools() -> None:
    tools = [tool("brave_search", query="string"), tool("code_interpreter", code="string")]
    assert parse('<|python_tag|>brave_search.call(query="weather in Paris")', "llama3", tools) == (
        "", [("brave_search", {"query": "weather in Paris"})])
    assert parse("<|python_tag|>import math\nprint(math.pi)", "llama3", tools) == (
        "", [("code_interpreter", {"code": "import math\nprint(math.pi)"})])
    assert parse("<|python_tag|>import math", "llama3", TOOLS) == ("<|python_tag|>import math", [])


# ----------------------------------------------------------------------------------------------- mistral


def test_mistral_array() -> None:
    text = ('Sure. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, '
            '{"name": "get_time", "parameters": "{}"}]')
    content, calls = parse_tool_calls(text, TOOLS, "mistral")
    assert (content, pairs(calls)) == ("Sure.", [("get_weather", PARIS), ("get_time", {})])
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", c.id) for c in calls)  # Mistral templates accept no other ids


def test_mistral_one_call_keeps_model_id() -> None:
    text = '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1B2c3D4e"}]'
    content, calls = parse_tool_calls(text, TOOLS, "mistral")
    assert (content, pairs(calls), calls[0].id) == ("", [("get_weather", PARIS)], "a1B2c3D4e")


def test_mistral_name_args_format() -> None:
    text = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[CALL_ID]Xy12345ab[ARGS]{}'
    content, calls = parse_tool_calls(text, TOOLS, "mistral")
    assert (content, pairs(calls), calls[1].id) == ("", [("get_weather", PARIS), ("get_time", {})], "Xy12345ab")


# --------------------------------------------------------------------------------------- generic (Gemma)


@pytest.mark.parametrize("text", [
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    '```tool_code\nprint(get_weather(city="Paris"))\n```',
    '```tool_code\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n```',
    '[get_weather(city="Paris")]',
    'get_weather(city="Paris")',
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
])
def test_generic_one_call(text: str) -> None:
    assert parse(text, "generic") == ("", [("get_weather", PARIS)])


def test_generic_several_calls_and_content() -> None:
    assert parse('[get_weather(city="Paris"), get_time()]', "generic") == (
        "", [("get_weather", PARIS), ("get_time", {})])
    text = ('I will call two tools.\n```json\n[{"name": "get_weather", "arguments": {"city": "Paris"}},'
            ' {"name": "get_time", "arguments": {}}]\n```')
    assert parse(text, "generic") == ("I will call two tools.", [("get_weather", PARIS), ("get_time", {})])
    text = 'Calling: {"name": "get_weather", "arguments": {"city": "Paris"}} now'
    assert parse(text, "generic") == ("Calling:  now", [("get_weather", PARIS)])


def test_generic_reads_every_marker() -> None:
    for text in ['<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
                 '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]',
                 '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}']:
        assert parse(text, "generic") == ("", [("get_weather", PARIS)])
        assert parse(text, "no-such-style") == ("", [("get_weather", PARIS)])


def test_openai_shaped_object() -> None:
    text = '{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}'
    assert parse(text, "llama3") == ("", [("get_weather", PARIS)])


# ------------------------------------------------------------------------------------ what stays content


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_stock", "arguments": {"symbol": "X"}}\n</tool_call>',
    '{"name": "get_stock", "parameters": {"symbol": "X"}}',
    '<|python_tag|>{"name": "get_stock", "parameters": {}}',
    '[TOOL_CALLS] [{"name": "get_stock", "arguments": {}}]',
    '[get_stock(symbol="X")]',
    '```tool_code\nget_stock(symbol="X")\n```',
])
def test_unknown_tool_names_stay_content(text: str, style: str) -> None:
    assert parse(text, style) == (text, [])


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>',
    '<tool_call>{"name": "get_weather", "arguments": {"city": Paris}}</tool_call>',
    '{"name": "get_weather", "parameters": {"city": "Paris",}}',
    '{"name": "get_weather", "arguments": "{city: Paris}"}',
    '{"name": "get_weather", "arguments": [1, 2]}',
    '{"name": "get_weather", "arguments": 7}',
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}',
    '[TOOL_CALLS]get_weather[ARGS]{"city": ',
    '<|python_tag|>{"name": "get_weather", ',
    '```json\n{"name": "get_weather", "arguments": {\n```',
    '[get_weather(city=Paris)]',
    '[get_weather("Paris")]',
    "{{{{[[[[",
    "",
    "Just an answer, no tools.",
    '{"name": "get_weather"}',  # bare JSON needs "arguments"/"parameters"
])
def test_malformed_stays_content(text: str, style: str) -> None:
    assert parse(text, style) == (text, [])


def test_no_tools_offered() -> None:
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    assert parse_tool_calls(text, [], "hermes") == (text, [])
    assert parse_tool_calls(text, [{"type": "function"}, "junk"], "hermes") == (text, [])  # type: ignore[list-item]


def test_random_fragments_never_raise() -> None:
    atoms = ["<tool_call>", "</tool_call>", "<|python_tag|>", "[TOOL_CALLS]", "[ARGS]", "<function=get_weather>",
             "</function>", "<parameter=city>", "</parameter>", "{", "}", "[", "]", '"name"', ":", ",", ";",
             '"get_weather"', '"arguments"', '"parameters"', '"{}"', '"x"', "1", "tru", "\n", "```", "json",
             "tool_code", "(", ")", "get_weather", "city=", '"Paris"', "print", "\\", "\\u12", " ", "[[[[{{{{"]
    rng = random.Random(1234)
    for _ in range(3000):
        text = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 30)))
        for style in STYLES:
            content, calls = parse_tool_calls(text, TOOLS, style)
            assert isinstance(content, str)
            assert all(c.name in ("get_weather", "get_time") and isinstance(c.arguments, dict) for c in calls)
            for shaped in openai_tool_calls(calls):
                assert isinstance(json.loads(shaped["function"]["arguments"]), dict)
            assert may_be_tool_call(text, style) in (True, False)
    assert parse_tool_calls("[" * 50_000, TOOLS, "generic") == ("[" * 50_000, [])


# ------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize(("text", "style"), [
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', "hermes"),
    ('\n {"name": "get_weather", "parameters": {"city": "Paris", "days": -1.5e+3, "x": true}}', "llama3"),
    ('<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', "llama3"),
    ('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Pa\\"ris\\u00e9"}}]', "mistral"),
    ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', "mistral"),
    ('```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```', "generic"),
    ('```tool_code\nprint(get_weather(city="Paris"))\n```', "generic"),
    ('[get_weather(city="Paris"), get_time()]', "generic"),
    ('[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "get_time", "arguments": null}]', "hermes"),
])
def test_may_be_tool_call_holds_every_prefix_of_a_call(text: str, style: str) -> None:
    assert parse_tool_calls(text, TOOLS, style)[1]
    for end in range(len(text) + 1):
        assert may_be_tool_call(text[:end], style), text[:end]


@pytest.mark.parametrize(("text", "style", "released_at"), [
    ("Hello there", "hermes", 1),
    ("<think>plan</think>", "hermes", 3),  # "<t" could still be "<tool_call>"
    ("The answer is 4", "llama3", 1),
    ('{"answer": 42} and more', "llama3", 14),  # held until the object closes without a "name"
    ("[1] is a citation", "mistral", 3),
    ("[link](https://x)", "generic", 6),
    ("{{ not json }}", "generic", 2),
    ("```python\nprint(1)\n```", "generic", 4),
    ("```\nls -la\n```", "generic", 5),
    ("[TOOL_CALLS] [", "hermes", 12),  # another family's marker: held only while it could be "[name("
])
def test_may_be_tool_call_releases_plain_text(text: str, style: str, released_at: int) -> None:
    held = [may_be_tool_call(text[:end], style) for end in range(len(text) + 1)]
    assert held == [True] * released_at + [False] * (len(text) + 1 - released_at)


def test_may_be_tool_call_whitespace_and_markers() -> None:
    for style in STYLES:
        assert may_be_tool_call("", style) and may_be_tool_call(" \n\t", style)
        assert may_be_tool_call(" {", style) and may_be_tool_call("[", style) and may_be_tool_call("`", style)
    assert may_be_tool_call("<tool_", "hermes") and not may_be_tool_call("<tool_", "mistral")
    assert may_be_tool_call("[TOOL_C", "mistral") and may_be_tool_call("[TOOL_C", "generic")
    assert may_be_tool_call("<|python", "llama3") and not may_be_tool_call("<|python", "hermes")
    assert may_be_tool_call("<|python_tag|>anything at all", "llama3")
    assert may_be_tool_call("<tool_call>\nnot even json yet", "hermes")


# --------------------------------------------------------------------------------------------- shapes


def test_output_shapes() -> None:
    text = ('<tool_call>{"name": "get_weather", "arguments": {"city": "Zürich", "days": 2, "opts": {"a": [1, null]}}}'
            '</tool_call><tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    _, calls = parse_tool_calls(text, TOOLS, "hermes")
    weather = {"city": "Zürich", "days": 2, "opts": {"a": [1, None]}}
    assert ollama_tool_calls(calls) == [
        {"function": {"index": 0, "name": "get_weather", "arguments": weather}},
        {"function": {"index": 1, "name": "get_time", "arguments": {}}}]
    openai = openai_tool_calls(calls)
    assert [(o["id"], o["type"], o["index"], o["function"]["name"]) for o in openai] == [
        (calls[0].id, "function", 0, "get_weather"), (calls[1].id, "function", 1, "get_time")]
    assert all(isinstance(o["function"]["arguments"], str) for o in openai)
    assert [json.loads(o["function"]["arguments"]) for o in openai] == [weather, {}]
    assert "Zürich" in openai[0]["function"]["arguments"]
    assert all(OPENAI_ID.fullmatch(c.id) for c in calls) and calls[0].id != calls[1].id


def test_tool_call_ids() -> None:
    ids = {new_call_id() for _ in range(200)} | {ToolCall("get_time", {}).id for _ in range(200)}
    assert len(ids) == 400 and all(OPENAI_ID.fullmatch(i) for i in ids)
    assert ToolCall("f", {}, id="call_x").id == "call_x"
    assert ollama_tool_calls([]) == [] and openai_tool_calls([]) == []
