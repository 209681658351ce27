"""Go text/template interpreter (camelid.tokenizer.gotemplate, .gofmt) and Ollama's template execution
(camelid.tokenizer.ollama_template).

Every expected string is what Go's text/template (with Ollama's ``missingkey=zero`` option and FuncMap) prints
for the same template and data; the reasoning is in the comments where it is not obvious.
"""

from __future__ import annotations

import datetime

import pytest

from camelid.errors import BadRequest
from camelid.tokenizer.gotemplate import Template, TemplateError, parse
from camelid.tokenizer.ollama_template import render_ollama

DATA = {
    "A": "x", "Empty": "", "Zero": 0, "F": 2.5, "L": [1, 2, 3], "NoItems": [], "M": {"b": 2, "a": 1}, "T": True,
    "Nil": None, "S": {"Inner": {"Deep": "d"}},
    "Msgs": [{"Role": "user", "Content": "hi"}, {"Role": "assistant", "Content": "yo"}],
}


def render(source: str, data: object = DATA) -> str:
    return parse(source).render(data)


@pytest.mark.parametrize("source, expected", [
    # trim markers remove all adjacent spaces, tabs and newlines; the marker needs a space next to it
    ("a  {{- .A -}}  b", "axb"),
    ("a \n\t{{- .A }}\n b", "ax\n b"),
    ("{{ .A -}}\n\n  y", "xy"),
    ("{{- if .A -}}\n  yes\n{{- end -}}\n", "yes"),
    ("x{{- 3 -}}y{{- -3 -}}z", "x3y-3z"),  # "{{-3" would be the number -3, "{{- -3" trims then prints -3
    # comments print nothing and may carry trim markers
    ("a {{/* note */}} b", "a  b"),
    ("a {{- /* note */ -}} b", "ab"),
    # fields, chains, $ and missing keys (missingkey=zero: a missing map key is nil, printed "<no value>")
    ("{{ .S.Inner.Deep }} {{ $.S.Inner.Deep }} {{ .Missing }}", "d d <no value>"),
    ("{{ with .S }}{{ .Inner.Deep }}{{ $.A }}{{ end }}", "dx"),
    ("{{ (index .Msgs 1).Role }}", "assistant"),
    # variables: declaration prints nothing, = assigns the nearest declaration, also from inside a block
    ("{{ $x := .A }}{{ $x }}{{ $x = \"y\" }}{{ $x }}", "xy"),
    ("{{ $s := \"\" }}{{ range .Msgs }}{{ $s = printf \"%s+%s\" $s .Role }}{{ end }}{{ $s }}", "+user+assistant"),
    ("{{ if $x := .A }}{{ $x }}{{ end }}", "x"),
    # if / else if / else, with / else
    ("{{ if .Empty }}e{{ else if .A }}a{{ else }}n{{ end }}", "a"),
    ("{{ if .Empty }}e{{ else if .Zero }}z{{ else }}n{{ end }}", "n"),
    ("{{ with .S.Inner }}{{ .Deep }}{{ end }}{{ with .Empty }}e{{ else }}none{{ end }}", "dnone"),
    ("{{ with $v := .A }}{{ $v }}{{ . }}{{ end }}", "xx"),
    ("{{ with .Empty }}a{{ else with .A }}{{ . }}{{ end }}", "x"),
    # range over lists (index, element), dicts (sorted keys), empty (else), ints; break and continue
    ("{{ range $i, $m := .Msgs }}{{ $i }}:{{ $m.Role }}={{ .Content }};{{ end }}", "0:user=hi;1:assistant=yo;"),
    ("{{ range $m := .Msgs }}{{ $m.Role }} {{ end }}", "user assistant "),
    ("{{ range $k, $v := .M }}{{ $k }}={{ $v }},{{ end }}", "a=1,b=2,"),
    ("{{ range .M }}{{ . }}{{ end }}", "12"),
    ("{{ range .NoItems }}x{{ else }}empty{{ end }}{{ range .Nil }}x{{ else }}nil{{ end }}", "emptynil"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ if eq . 3 }}{{ break }}{{ end }}{{ . }}{{ end }}", "1"),
    ("{{ range $i, $_ := .Msgs }}{{ $last := eq (len (slice $.Msgs $i)) 1 }}{{ .Role }}{{ if $last }}!{{ end }} {{ end }}",
     "user assistant! "),
    # pipelines: the value becomes the last argument of the next command
    ("{{ .A | printf \"<%s>\" }} {{ \"q\" | printf \"%s%s\" .A }} {{ .L | len }} {{ (len .L) }}", "<x> xq 3 3"),
    ("{{ .A | eq \"x\" | not }}", "false"),
    # literals: Go escapes, raw strings, chars (a rune is an int), number syntaxes, bool, untyped floats
    ("{{ `raw\\n` }}|{{ \"t\\t\\u00e9\\x41\\101\\\"\" }}|{{ 'a' }}", "raw\\n|t\té" + "AA\"|97"),
    ("{{ 0x1F }} {{ 1_000 }} {{ 017 }} {{ -3 }} {{ .5 }} {{ 1e3 }} {{ 3.0 }} {{ true }} {{ false }}",
     "31 1000 15 -3 0.5 1000 3 true false"),
    # printing: floats as Go %v (shortest, exponent from 1e+06), lists and maps roughly as Go's fmt
    ("{{ .F }} {{ 1e6 }} {{ 100000.0 }} {{ 1234567.0 }} {{ 0.0001 }} {{ 0.00001 }}",
     "2.5 1e+06 100000 1.234567e+06 0.0001 1e-05"),
    ("{{ .L }} {{ .M }} {{ .S }} {{ .NoItems }} {{ .T }}", "[1 2 3] map[a:1 b:2] map[Inner:map[Deep:d]] [] true"),
])
def test_constructs(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize("source, expected", [
    # and/or return an argument (the first false / first true one, else the last) and stop evaluating there:
    # the out-of-range index below is never evaluated
    ("{{ and .A .Empty }}|{{ and .A .T }}|{{ or .Empty .Zero }}|{{ or .Empty .A }}|{{ and 1 0 2 }}", "|true|0|x|0"),
    ("{{ or .A (index .L 99) }} {{ and .Empty (index .L 99) }}|", "x |"),
    ("{{ not .A }} {{ not .Empty }} {{ not .NoItems }} {{ not .M }} {{ not .Nil }}", "false true true false true"),
    # eq a b c is a==b || a==c; nil compares unequal to anything else without error
    ("{{ eq .A \"x\" }} {{ eq .A \"y\" \"x\" }} {{ ne .A \"x\" }} {{ eq .Nil \"x\" }} {{ eq .Zero 0 }}",
     "true true false false true"),
    ("{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }} {{ lt \"B\" \"a\" }}", "true true true false true"),
    # len counts bytes of a string, like Go
    ("{{ len .A }} {{ len .L }} {{ len .M }} {{ len \"héllo\" }}", "1 3 2 6"),
    ("{{ index .L 1 }} {{ index .M \"b\" }} {{ index .M \"zz\" }} {{ index .Msgs 1 \"Role\" }}", "2 2 <no value> assistant"),
    ("{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice \"hello\" 1 3 }} {{ len (slice .L 3) }}", "[2 3] [2] el 0"),
    # print puts spaces between operands when neither is a string; println always, plus a newline
    ("{{ print .A 1 2 .A \"z\" .Nil }}|{{ println .A 1 }}|{{ print }}", "x1 2xz<nil>|x 1\n|"),
    ("{{ printf \"%s-%d-%v-%q-%t-%x\" .A 42 .L .A .T 255 }}", "x-42-[1 2 3]-\"x\"-true-ff"),
    ("{{ printf \"%05.1f|%6.2f|%-4d|%4s|%.2s|%e|%g\" 3.14159 2.5 7 \"ab\" \"abc\" 1234.5 0.00001 }}",
     "003.1|  2.50|7   |  ab|ab|1.234500e+03|1e-05"),
    ("{{ printf \"%d %s\" .A }}|{{ printf \"%d\" 1 2 }}|{{ printf \"100%%\" }}|{{ printf \"%v\" .Nil }}",
     "%!d(string=x) %!s(MISSING)|1%!(EXTRA int=2)|100%|<nil>"),
    # json is Go's json.Marshal: compact, map keys sorted, <>& escaped, floats shortest
    ("{{ json .M }} {{ json .A }} {{ json \"<a&b>\\n\" }} {{ json .L }} {{ json .Nil }} {{ json 1e21 }} {{ json 1e-7 }}",
     '{"a":1,"b":2} "x" "\\u003ca\\u0026b\\u003e\\n" [1,2,3] null 1e+21 1e-7'),
    ("{{ json .S }} {{ json 2.5 }} {{ json 3.0 }}", '{"Inner":{"Deep":"d"}} 2.5 3'),
    ("{{ toTypeScriptType .A }}", "any"),  # only Ollama's tool property values have a TypeScript type
])
def test_functions(source: str, expected: str) -> None:
    assert render(source) == expected


def test_dates() -> None:
    today = datetime.date.today()
    assert render("{{ currentDate }}") == today.isoformat()
    assert render("{{ yesterdayDate }}") == (today - datetime.timedelta(days=1)).isoformat()


def test_objects_and_caching() -> None:
    class Point:
        def __init__(self) -> None:
            self.X, self.Y = 1, [2]

    assert render("{{ .P.X }} {{ index .P.Y 0 }}", {"P": Point()}) == "1 2"
    assert parse("{{ .A }}") is parse("{{ .A }}")
    assert isinstance(parse("x"), Template)
    # Ollama's Template.Vars: fields and variables used (declarations are not uses), lower-cased
    assert parse("{{ range $i, $m := .Messages }}{{ $.System }}{{ .Role }}{{ end }}").identifiers() == [
        "$", "messages", "role", "system"]


@pytest.mark.parametrize("source, message, line, column", [
    ("{{ .Prompt ", "unclosed action", 1, 1),
    ("a\n{{ if .A }}b", "no {{end}} for the {{if}}", 2, 4),
    ("{{ range .L }}{{ else }}", "no {{end}} for the {{range}}", 1, 4),
    ("{{ foo 1 }}", 'function "foo" not defined', 1, 4),
    ("{{ end }}", "unexpected {{end}}", 1, 4),
    ("{{ else }}", "unexpected {{else}}", 1, 4),
    ("{{ $x }}", 'undefined variable "$x"', 1, 4),
    ("{{ break }}", "{{break}} outside {{range}}", 1, 4),
    ("{{ if }}{{ end }}", "missing value for if", 1, 7),
    ("{{ \"abc }}", "unterminated quoted string", 1, 4),
    ("{{ 12ab }}", "bad number syntax", 1, 4),
    ("{{ ( .A }}", "unclosed left paren", 1, 9),
    ("{{/* x */ }}", "comment ends before closing delimiter", 1, 1),
    ("{{ .A 1 | 2 }}", "non executable command in pipeline stage 2", 1, 11),
    ("{{ define \"x\" }}{{ end }}", "{{define}} is not supported", 1, 4),
])
def test_syntax_errors(source: str, message: str, line: int, column: int) -> None:
    with pytest.raises(TemplateError) as info:
        parse(source)
    assert message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)
    assert isinstance(info.value, BadRequest)


@pytest.mark.parametrize("source, message", [
    ("{{ index .L 5 }}", "error calling index: index out of range: 5"),
    ("{{ slice .L 2 1 }}", "invalid slice index: 2 > 1"),
    ("{{ eq .A 1 }}", "incompatible types for comparison"),
    ("{{ lt .T .T }}", "invalid type for comparison"),
    ("{{ len .Zero }}", "len of type int"),
    ("{{ .A.B }}", "can't evaluate field B in type string"),
    ("{{ .Missing.X }}", "nil pointer evaluating interface {}.X"),
    ("{{ .A 1 }}", "A is not a method but has arguments"),
    ("{{ not }}", "wrong number of args for not: want 1 got 0"),
    ("{{ nil }}", "nil is not a command"),
    ("{{ range .A }}{{ end }}", "range can't iterate over x"),
])
def test_execution_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match="line 1") as info:
        render(source)
    assert message in str(info.value)


# ----------------------------------------------------------------------------------------------------- Ollama

# ChatML as in the task brief (qwen2-style): prints every message, system included
CHATML = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}{{ if and $last (ne .Role "assistant") }}<|im_end|>
<|im_start|>assistant
{{ end }}{{ end }}"""

# Llama 3.1 from the Ollama library (typo "orginal" included)
LLAMA31 = """{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

Cutting Knowledge Date: December 2023

When you receive a tool call response, use the output to format an answer to the orginal user question.

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>
{{- if and $.Tools $last }}

Given the following functions, please respond with a JSON for a function call with its proper arguments that best \
answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use \
variables.

{{ range $.Tools }}
{{- . }}
{{ end }}
Question: {{ .Content }}<|eot_id|>
{{- else }}

{{ .Content }}<|eot_id|>
{{- end }}{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}
{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"""

# Ollama's template/gemma-instruct.gotmpl: system messages are folded into the next user turn
GEMMA = """{{- $system := "" }}
{{- range .Messages }}
{{- if eq .Role "system" }}
{{- if not $system }}{{ $system = .Content }}
{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}
{{- end }}
{{- continue }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{- if $system }}
{{ $system }}
{{- $system = "" }}
{{- end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{- end }}
{{ .Content }}<end_of_turn>
{{ end }}<start_of_turn>model
"""

# Mistral v0.1/v0.2 from the Ollama library: a legacy template (no .Messages, no .Response)
MISTRAL_LEGACY = "[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]"

# Mistral v0.3 from the Ollama library: .Messages path, {{ $.Tools }} prints the tools as JSON
MISTRAL_V03 = """{{- if .Messages }}
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $index)) 1) $.Tools }}[AVAILABLE_TOOLS] {{ $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq (len (slice $.Messages $index)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }}{{ .Content }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{- end }}]
{{- end }}</s>
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}} [/TOOL_RESULTS]
{{- end }}
{{- end }}
{{- else }}[INST] {{ if .System }}{{ .System }}

{{ end }}{{ .Prompt }}[/INST]
{{- end }}{{ .Response }}
{{- if .Response }}</s>
{{- end }}"""

CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "I'd like to show off how chat templating works!"},
]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}]
TOOL_CHAT = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "content": "22 degrees and sunny", "tool_name": "get_weather"},
    {"role": "assistant", "content": "It is 22 degrees and sunny in Paris."},
    {"role": "user", "content": "And in Tokyo?"},
]
# a tool as .Tools prints it (its String method is json.Marshal: struct field order, property keys sorted)
TOOL_JSON = ('{"type":"function","function":{"name":"get_weather","description":"Get the current weather",'
             '"parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string",'
             '"description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}}}')


def test_chatml_prints_system_twice() -> None:
    # .System is set from the system message, which also stays in .Messages; the last message is a user one,
    # so its <|im_end|> comes from the `and $last (ne .Role "assistant")` branch, then the assistant header
    assert render_ollama(CHATML, CHAT) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
        "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
        "<|im_start|>assistant\n")


def test_llama31_multi_turn() -> None:
    assert render_ollama(LLAMA31, CHAT) == (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI'm doing great. How can I help you today?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nI'd like to show off how chat templating works!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_llama31_with_tools() -> None:
    # the tool call prints its arguments as JSON (Ollama's templateArgs String method), the tool result is an
    # ipython turn, and only the last user turn lists the tools
    assert render_ollama(LLAMA31, TOOL_CHAT, tools=TOOLS) == (
        "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n"
        "When you receive a tool call response, use the output to format an answer to the orginal user question."
        "\n\nYou are a helpful assistant with tool calling capabilities.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat's the weather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city":"Paris","unit":"celsius"}}<|eot_id|>'
        "<|start_header_id|>ipython<|end_header_id|>\n\n22 degrees and sunny<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 22 degrees and sunny in Paris.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON "
        "for a function call with its proper arguments that best answers the given prompt.\n\nRespond in the "
        'format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use '
        f"variables.\n\n{TOOL_JSON}\n\nQuestion: And in Tokyo?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_gemma_folds_system_messages() -> None:
    chat = [{"role": "system", "content": "Be brief."}, *CHAT]  # two system messages -> one, joined by printf
    assert render_ollama(GEMMA, chat) == (
        "<start_of_turn>user\nBe brief.\n\nYou are a helpful assistant.\nHello, how are you?<end_of_turn>\n"
        "<start_of_turn>model\nI'm doing great. How can I help you today?<end_of_turn>\n"
        "<start_of_turn>user\nI'd like to show off how chat templating works!<end_of_turn>\n"
        "<start_of_turn>model\n")


def test_mistral_v03_tools() -> None:
    assert render_ollama(MISTRAL_V03, TOOL_CHAT, tools=TOOLS) == (
        "[INST] What's the weather in Paris?[/INST]"
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}]</s>'
        '[TOOL_RESULTS] {"content": 22 degrees and sunny} [/TOOL_RESULTS]'
        "It is 22 degrees and sunny in Paris.</s>"
        f"[AVAILABLE_TOOLS] [{TOOL_JSON}][/AVAILABLE_TOOLS][INST] And in Tokyo?[/INST]")


def test_legacy_template_renders_each_exchange() -> None:
    # Ollama appends {{ .Response }} to a template that has none, renders each system/user/assistant exchange
    # with it and the last one cut after it (so the final prompt ends at "[/INST]")
    assert render_ollama(MISTRAL_LEGACY, CHAT) == (
        "[INST] You are a helpful assistant. Hello, how are you? [/INST]"
        "I'm doing great. How can I help you today?"
        "[INST] I'd like to show off how chat templating works! [/INST]")
    # tool messages do not exist for a legacy template; the later assistant message replaces the empty one
    assert render_ollama(MISTRAL_LEGACY, TOOL_CHAT, tools=TOOLS) == (
        "[INST] What's the weather in Paris? [/INST]It is 22 degrees and sunny in Paris."
        "[INST] And in Tokyo? [/INST]")


def test_legacy_template_with_response_and_prefill() -> None:
    chatml = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}"
              "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n")
    assert render_ollama(chatml, CHAT[1:], system="Be nice.") == (
        "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHello, how are you?<|im_end|>\n"
        "<|im_start|>assistant\nI'm doing great. How can I help you today?<|im_end|>\n"
        "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n<|im_start|>assistant\n")
    # a response to continue is rendered up to and including {{ .Response }}: the <|im_end|> after it is cut
    assert render_ollama(chatml, CHAT[3:], response="Sure, here") == (
        "<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n"
        "<|im_start|>assistant\nSure, here")
    assert render_ollama(MISTRAL_V03, CHAT[3:], response="Sure") == (
        "[INST] I'd like to show off how chat templating works![/INST]Sure</s>")


def test_collation_and_system() -> None:
    template = "{{ .System }}|{{ range .Messages }}{{ .Role }}={{ .Content }}({{ .ToolName }});{{ end }}"
    chat = [{"role": "system", "content": "S1"}, {"role": "user", "content": "a"}, {"role": "User", "content": "b"},
            {"role": "system", "content": "S2"}, {"role": "tool", "content": "t1", "tool_name": "f"},
            {"role": "tool", "content": "t2", "tool_name": "g"}]
    # consecutive same-role messages are joined by a blank line (roles are lower-cased), tool messages never;
    # .System joins every system message
    assert render_ollama(template, chat) == "S1\n\nS2|system=S1();user=a\n\nb();system=S2();tool=t1(f);tool=t2(g);"
    # the model's default system prompt goes first unless the chat starts with a system message
    assert render_ollama(template, chat[1:2], system="D") == "D|system=D();user=a();"
    assert render_ollama(template, chat[:2], system="D") == "S1|system=S1();user=a();"


def test_values_outside_messages() -> None:
    # in the .Messages path Ollama sets Response to "" and gives no Prompt key at all: it prints "<no value>"
    template = "{{ range .Messages }}{{ end }}[{{ .Prompt }}][{{ .Response }}][{{ .Tools }}][{{ json .Tools }}]"
    assert render_ollama(template, CHAT) == "[<no value>][][null][null]"
    assert render_ollama(template, CHAT, tools=[]) == "[<no value>][][[]][[]]"
    think = "{{ range .Messages }}{{ end }}{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}"
    assert render_ollama(think, CHAT) == "false  false"
    assert render_ollama(think, CHAT, think=True) == "true medium true"
    assert render_ollama(think, CHAT, think="high") == "true high true"


def test_tool_structures() -> None:
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {
        "name": "f", "arguments": {"n": 12345678, "x": 1.5, "s": "<b>"}}}]}
    # arguments are JSON-decoded into Go `any`: numbers are float64, so %v prints 1.2345678e+07 while JSON
    # keeps 12345678; map keys are ranged and marshalled in sorted order
    template = ("{{ range .Messages }}{{ range $i, $c := .ToolCalls }}{{ $i }} {{ .ID }} {{ .Function.Name }} "
                "{{ .Function.Arguments }}{{ range $k, $v := .Function.Arguments }} {{ $k }}={{ $v }}{{ end }}"
                "{{ end }}{{ end }}")
    assert render_ollama(template, [call]) == (
        '0 c1 f {"n":12345678,"s":"\\u003cb\\u003e","x":1.5} n=1.2345678e+07 s=<b> x=1.5')
    # tool properties: ranged in sorted order, their Type prints as a name, toTypeScriptType maps it
    template = ("{{ range .Messages }}{{ end }}{{ range .Tools }}{{ range $n, $p := .Function.Parameters.Properties }}"
                "{{ $n }}:{{ $p.Type }}:{{ toTypeScriptType $p }}:{{ json $p.Enum }} {{ end }}{{ end }}")
    tools = [{"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {
        "b": {"type": ["integer", "null"]}, "a": {"type": "string", "enum": ["x"]},
        "c": {"anyOf": [{"type": "string"}, {"type": "array"}]}}}}}]
    assert render_ollama(template, [CHAT[1]], tools=tools) == (
        'a:string:string:["x"] b:[integer null]:number | null:null c::string | any[]:null ')
    # Ollama's template tool function has no String method: {{ .Function }} prints as a Go struct
    template = "{{ range .Messages }}{{ end }}{{ range .Tools }}{{ .Function }}{{ end }}"
    assert render_ollama(template, [CHAT[1]], tools=TOOLS) == (
        '{get_weather Get the current weather {object <nil> <nil> [city] {"city":{"type":"string","description":'
        '"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}}')


def test_bad_messages() -> None:
    with pytest.raises(BadRequest):
        render_ollama(CHATML, [{"role": "user", "content": ["not", "text"]}])
    with pytest.raises(BadRequest):
        render_ollama(CHATML, [{"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": "[1]"}}]}])


def test_render_ollama_is_still_importable_from_gotemplate() -> None:
    # camelid/llm.py imports it from there; gotemplate re-exports it lazily (ollama_template imports gotemplate)
    from camelid.tokenizer.gotemplate import render_ollama as reexported

    assert reexported is render_ollama
