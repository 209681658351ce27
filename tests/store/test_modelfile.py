"""Ollama Modelfiles: parsing each instruction, errors with line numbers, typed parameters, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from camelid.errors import BadRequest
from camelid.store.modelfile import Modelfile, parse, render, render_parameters

Q3 = '"""'


# ------------------------------------------------------------------------------------------ instructions


def test_from_only() -> None:
    assert parse("FROM llama3.2\n") == Modelfile("llama3.2", [])
    assert parse("FROM ./models/my model.gguf") == Modelfile("./models/my model.gguf", [])
    assert parse('FROM "/path with/spaces.gguf"').from_ == "/path with/spaces.gguf"


def test_every_instruction() -> None:
    text = (
        "FROM smollm2:135m\n"
        "PARAMETER temperature 0.7\n"
        "PARAMETER num_ctx 4096\n"
        "TEMPLATE {{ .Prompt }}\n"
        "SYSTEM You are a pirate.\n"
        "ADAPTER ./lora.gguf\n"
        "LICENSE MIT\n"
        "MESSAGE user Hi\n"
        "MESSAGE assistant Arr!"
    )
    assert parse(text) == Modelfile(
        from_="smollm2:135m",
        parameters=[("temperature", "0.7"), ("num_ctx", "4096")],
        template="{{ .Prompt }}",
        system="You are a pirate.",
        adapters=["./lora.gguf"],
        licenses=["MIT"],
        messages=[("user", "Hi"), ("assistant", "Arr!")],
    )


def test_keywords_are_case_insensitive() -> None:
    text = "from a\nParameter top_k 5\ntemplate t\nSyStEm s\nadapter x\nLicense l\nmessage User u\n"
    mf = parse(text)
    assert mf == Modelfile("a", [("top_k", "5")], "t", "s", ["x"], ["l"], [("user", "u")])


def test_message_roles() -> None:
    roles = ["system", "user", "assistant", "tool"]
    mf = parse("FROM a\n" + "".join(f"MESSAGE {role} text {role}\n" for role in roles))
    assert mf.messages == [(role, f"text {role}") for role in roles]
    with pytest.raises(BadRequest, match=r"role 'robot' \(line 2\)"):
        parse("FROM a\nMESSAGE robot beep")


def test_comments_blank_lines_and_indentation() -> None:
    text = "# a Modelfile\n\n   # indented comment\nFROM a\n\t\n  SYSTEM   # not a comment  \n#FROM b\n"
    assert parse(text) == Modelfile("a", [], system="# not a comment")


def test_bare_values_are_trimmed_and_keep_inner_text() -> None:
    mf = parse('FROM a\nSYSTEM   say "hi" to   #everyone \t \n')
    assert mf.system == 'say "hi" to   #everyone'


def test_double_quoted_one_line() -> None:
    mf = parse('FROM a\nSYSTEM "  padded  "\nLICENSE ""\nMESSAGE user "a "quoted" word"\n')
    assert mf.system == "  padded  "
    assert mf.licenses == [""]
    assert mf.messages == [("user", 'a "quoted" word')]


def test_triple_quoted_blocks() -> None:
    text = (
        "FROM a\n"
        'TEMPLATE """{{ if .System }}<|system|>\n'
        "{{ .System }}</s>{{ end }}\n"
        "it's a 'single' quote, a \"double\" one and a # hash\n"
        'PARAMETER not an instruction inside a block"""\n'
        'SYSTEM """\n'
        "   indented first line   \n"
        '"""\n'
        'LICENSE """one line"""   \n'
    )
    mf = parse(text)
    assert mf.template == (
        "{{ if .System }}<|system|>\n{{ .System }}</s>{{ end }}\n"
        "it's a 'single' quote, a \"double\" one and a # hash\n"
        "PARAMETER not an instruction inside a block"
    )
    assert mf.system == "\n   indented first line   \n"
    assert mf.licenses == ["one line"]
    assert mf.parameters == []


def test_triple_quoted_block_ending_in_quotes() -> None:
    # A run of more than three quotes closes the block with its last three.
    assert parse('FROM a\nSYSTEM """say "hi""""').system == 'say "hi"'
    assert parse('FROM a\nSYSTEM """""x"" """""').system == '""x"" ""'
    assert parse('FROM a\nSYSTEM """"""').system == ""


def test_crlf_and_bom() -> None:
    text = '\ufeffFROM a\r\nSYSTEM hello \r\nPARAMETER stop "x y"\r\nLICENSE """l1\r\nl2"""\r\n'
    mf = parse(text)
    assert mf == Modelfile("a", [("stop", "x y")], system="hello", licenses=["l1\r\nl2"])


def test_adapter_and_license_and_message_accumulate() -> None:
    text = (
        "FROM a\nADAPTER one.gguf\nLICENSE first\nMESSAGE user q1\nADAPTER two.gguf\n"
        'LICENSE """second\nlicense"""\nMESSAGE assistant a1\nMESSAGE user q2\n'
    )
    mf = parse(text)
    assert mf.adapters == ["one.gguf", "two.gguf"]
    assert mf.licenses == ["first", "second\nlicense"]
    assert mf.messages == [("user", "q1"), ("assistant", "a1"), ("user", "q2")]


def test_later_template_and_system_replace_earlier() -> None:
    mf = parse("FROM a\nSYSTEM one\nTEMPLATE t1\nSYSTEM two\nTEMPLATE t2\n")
    assert (mf.system, mf.template) == ("two", "t2")


# -------------------------------------------------------------------------------------------- parameters


def test_stop_accumulates_and_quotes_are_removed() -> None:
    text = 'FROM a\nPARAMETER stop <|im_end|>\nPARAMETER stop "<|user|>"\nPARAMETER stop "### Human:"\n'
    mf = parse(text)
    assert mf.parameters == [("stop", "<|im_end|>"), ("stop", "<|user|>"), ("stop", "### Human:")]
    assert mf.parameter_values() == {"stop": ["<|im_end|>", "<|user|>", "### Human:"]}


def test_parameter_values_are_typed() -> None:
    text = (
        "FROM a\nPARAMETER temperature 0.7\nPARAMETER num_ctx 4096\nPARAMETER stop a\n"
        'PARAMETER top_p "0.5"\nPARAMETER use_mmap false\nPARAMETER seed -1\nPARAMETER stop b\n'
        "PARAMETER top_k 10\nPARAMETER top_k 20\n"
    )
    values = parse(text).parameter_values()
    assert values == {
        "temperature": 0.7,
        "num_ctx": 4096,
        "stop": ["a", "b"],
        "top_p": 0.5,
        "use_mmap": False,
        "seed": -1,
        "top_k": 20,  # the last one wins
    }
    assert type(values["temperature"]) is float and type(values["num_ctx"]) is int
    assert type(values["use_mmap"]) is bool


def test_integral_float_and_bool_spellings() -> None:
    values = parse("FROM a\nPARAMETER temperature 1\nPARAMETER use_mmap TRUE\n").parameter_values()
    assert values == {"temperature": 1.0, "use_mmap": True}
    assert type(values["temperature"]) is float


def test_parameter_values_of_a_built_modelfile() -> None:
    assert Modelfile("a", []).parameter_values() == {}
    with pytest.raises(BadRequest, match="unknown parameter 'mirostat'"):
        Modelfile("a", [("mirostat", "1")]).parameter_values()


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "no FROM"),
        ("# only a comment\nSYSTEM hi\n", "no FROM"),
        ("FROM a\nFROM b", r"FROM given more than once \(line 2\)"),
        ("FROM a\n\nFOO bar\n", r"unknown instruction 'FOO' \(line 3\)"),
        ("FROM a\nDRAFT x", r"unknown instruction 'DRAFT' \(line 2\)"),
        ('FROM a\nSYSTEM"x"', r"unknown instruction 'SYSTEM\"x\"' \(line 2\)"),
        ("FROM a\nPARAMETER foo 1", r"unknown parameter 'foo' \(line 2\)"),
        ("FROM a\nPARAMETER Temperature 1", r"unknown parameter 'Temperature' \(line 2\)"),
        (
            "FROM a\n# c\nPARAMETER temperature hot",
            r"invalid value 'hot' for parameter temperature.*\(line 3\)",
        ),
        ("FROM a\nPARAMETER num_ctx 4.5", r"invalid value '4.5' for parameter num_ctx.*\(line 2\)"),
        ("FROM a\nPARAMETER use_mmap maybe", r"invalid value 'maybe' for parameter use_mmap.*\(line 2\)"),
        ("FROM a\nPARAMETER stop", r"PARAMETER needs a name and a value \(line 2\)"),
        ("FROM a\nMESSAGE user", r"MESSAGE needs a role and a value \(line 2\)"),
        ("FROM", r"FROM needs a value \(line 1\)"),
        ('FROM ""', r"FROM needs a model name or path \(line 1\)"),
        ("FROM a\nSYSTEM   \n", r"SYSTEM needs a value \(line 2\)"),
        ('FROM a\nSYSTEM """never\nclosed\n', r'unterminated """ block starting on line 2'),
        ('FROM a\nSYSTEM """never closed""x', r'unterminated """ block starting on line 2'),
        ('FROM a\nTEMPLATE """a\nb""" trailing\n', r'unexpected text after the closing """ \(line 3\)'),
        ('FROM a\nSYSTEM "open', r"unterminated quoted string \(line 2\)"),
        ('FROM a\nSYSTEM "a" b', r"unterminated quoted string \(line 2\)"),
        ('FROM a\nSYSTEM "', r"unterminated quoted string \(line 2\)"),
        # No parsed text may contain """, however it is written.
        ('FROM a\nSYSTEM a"""b', r'may not contain """ \(line 2\)'),
        ('FROM a\nSYSTEM "a"""b"', r'may not contain """ \(line 2\)'),
        ('FROM a\nSYSTEM """x""""""', r'may not contain """ \(line 2\)'),
    ],
)
def test_errors(text: str, pattern: str) -> None:
    with pytest.raises(BadRequest, match=pattern):
        parse(text)


# ------------------------------------------------------------------------------------------------ render


def test_render_order_and_quoting() -> None:
    mf = Modelfile(
        from_="base",
        parameters=[("stop", "a b"), ("temperature", "0.5"), ("stop", '"q"'), ("stop", " lead")],
        template="line1\nline2",
        system="plain text",
        adapters=["x.gguf"],
        licenses=["MIT", 'it\'s "quoted"'],
        messages=[("user", "hello"), ("assistant", " spaced ")],
    )
    assert render(mf) == (
        "FROM base\n"
        'TEMPLATE """line1\nline2"""\n'
        "SYSTEM plain text\n"
        'PARAMETER stop "a b"\n'
        "PARAMETER temperature 0.5\n"
        'PARAMETER stop """"q""""\n'
        'PARAMETER stop """ lead"""\n'
        "MESSAGE user hello\n"
        'MESSAGE assistant """ spaced """\n'
        "LICENSE MIT\n"
        'LICENSE """it\'s "quoted""""\n'
        "ADAPTER x.gguf\n"
    )
    assert parse(render(mf)) == mf


@pytest.mark.parametrize(
    ("mf", "pattern"),
    [
        (Modelfile("a", [], system='has """ inside'), 'SYSTEM: a text containing """'),
        (Modelfile("a", [], template='"""'), 'TEMPLATE: a text containing """'),
        (Modelfile("a", [("stop", 'x"""')]), 'parameter stop: a text containing """'),
        (Modelfile("a", [], messages=[("user", '"""')]), 'MESSAGE: a text containing """'),
        (Modelfile("", []), "FROM needs"),
        (Modelfile("a", [("bogus", "1")]), "unknown parameter 'bogus'"),
        (Modelfile("a", [("bad name", "1")]), "unknown parameter 'bad name'"),
        (Modelfile("a", [("temperature", "hot")]), "invalid value 'hot' for parameter temperature"),
        (Modelfile("a", [], messages=[("robot", "x")]), "invalid message role 'robot'"),
        (Modelfile("a", [], messages=[("User", "x")]), "invalid message role 'User'"),
    ],
)
def test_render_refuses(mf: Modelfile, pattern: str) -> None:
    with pytest.raises(BadRequest, match=pattern):
        render(mf)


def test_render_parameters() -> None:
    values = {
        "temperature": 0.7,
        "top_p": 1.0,
        "min_p": 1e-05,
        "repeat_penalty": np.float32(1.1),  # float32 values keep their own shortest digits
        "presence_penalty": 0.1 + 0.2,  # not 0.3: the exact float comes back
        "num_ctx": 4096.0,
        "top_k": 40,
        "seed": None,  # skipped
        "use_mmap": False,
        "stop": ["<|im_end|>", "a b"],
    }
    pairs = render_parameters(values)
    assert pairs == [
        ("temperature", "0.7"),
        ("top_p", "1"),
        ("min_p", "1e-05"),
        ("repeat_penalty", "1.1"),
        ("presence_penalty", "0.30000000000000004"),
        ("num_ctx", "4096"),
        ("top_k", "40"),
        ("use_mmap", "false"),
        ("stop", "<|im_end|>"),
        ("stop", "a b"),
    ]
    assert render_parameters({"stop": "one", "use_mmap": "yes"}) == [("stop", "one"), ("use_mmap", "true")]


def test_render_parameters_round_trip() -> None:
    values = {"temperature": 0.123456789, "num_predict": -1, "stop": ['"quoted"', " x", "\n"], "top_p": 0.95}
    mf = Modelfile("a", render_parameters(values))
    assert parse(render(mf)).parameter_values() == values


def test_render_parameters_refuses() -> None:
    with pytest.raises(BadRequest, match="unknown parameter 'mirostat'"):
        render_parameters({"mirostat": 1})
    with pytest.raises(BadRequest, match="temperature"):
        render_parameters({"temperature": "hot"})
    with pytest.raises(BadRequest, match="num_ctx"):
        render_parameters({"num_ctx": 4.5})
    with pytest.raises(BadRequest, match="stop"):
        render_parameters({"stop": 5})


# ------------------------------------------------------------------------------------------- round trips

TRICKY = [
    "",
    " ",
    "plain",
    "  leading spaces",
    "trailing spaces  ",
    "\tleading tab",
    "inner\ttab",
    "trailing tab\t",
    "# not a comment",
    "#",
    "a # hash inside",
    "unicode: héllo wörld — 日本語 🦙",
    "\u00a0non-breaking space around\u00a0",
    "zero\u200bwidth",
    "line\u2028separator",
    '"',
    '""',
    '"quoted"',
    '""double at both ends""',
    'say "hi"',
    "it's",
    "'single'",
    'back\\slash \\n \\"',
    "\n",
    "\n\n",
    "multi\nline\n",
    "\nstarts with a newline",
    "crlf\r\ninside",
    "lone\rreturn",
    'quote at line end"\nnext',
    'x""\n""y',
    "FROM other\nPARAMETER x y",
    '"""'[:2] + "\n" + '"',
    "{{ .System }}",
    "-1",
]


@pytest.mark.parametrize("text", TRICKY, ids=[repr(t) for t in TRICKY])
def test_round_trip_tricky_strings(text: str) -> None:
    mf = Modelfile(
        from_=text or "base",
        parameters=[("stop", text)],
        template=text,
        system=text,
        adapters=[text],
        licenses=[text, text],
        messages=[("user", text), ("assistant", text)],
    )
    assert parse(render(mf)) == mf


VARIED = [
    Modelfile("llama3.2", []),
    Modelfile("/abs/path/model.gguf", [("num_ctx", "8192")]),
    Modelfile("./weights dir/m.gguf", [], system="short"),
    Modelfile(
        "mistral",
        [
            ("temperature", "0.2"),
            ("stop", "[INST]"),
            ("stop", "[/INST]"),
            ("seed", "42"),
            ("use_mmap", "true"),
        ],
        template="[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]",
    ),
    Modelfile(
        "qwen",
        [("stop", "<|im_start|>"), ("stop", "<|im_end|>"), ("top_p", "0.8"), ("repeat_last_n", "-1")],
        template=(
            "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
            "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
        ),
        system="You are Qwen.\nBe brief.",
        licenses=["Apache-2.0", 'Tongyi Qianwen LICENSE\n\n"Agreement" means...\n'],
        messages=[("system", "sys"), ("user", "What's 2+2?"), ("assistant", "4"), ("tool", '{"x": 1}')],
        adapters=["a.gguf", "b dir/c.gguf"],
    ),
    Modelfile("m", [("stop", " "), ("stop", "\t"), ("stop", "a  b"), ("temperature", " 0.5 ")]),
    Modelfile("m", [], template="", system="", licenses=[""], messages=[("user", "")]),
]


@pytest.mark.parametrize("mf", VARIED)
def test_round_trip_varied(mf: Modelfile) -> None:
    text = render(mf)
    assert parse(text) == mf
    assert render(parse(text)) == text
