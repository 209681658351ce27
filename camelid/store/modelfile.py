"""Ollama Modelfiles: parse the text into a `Modelfile`, and render one back to text.

The format, as Ollama reads it (docs/modelfile.md)::

    # a comment
    FROM llama3.2
    PARAMETER temperature 0.7
    PARAMETER stop "<|im_end|>"
    TEMPLATE \"\"\"{{ .System }}
    {{ .Prompt }}\"\"\"
    SYSTEM You are a helpful assistant.
    MESSAGE user Hello
    LICENSE \"\"\"MIT ...\"\"\"
    ADAPTER ./lora.gguf

Keywords are case-insensitive. A value is one of:

- bare: the rest of the line, trimmed;
- ``"double quoted"`` on one line: everything between the first and the last ``"`` of the line, verbatim
  (no backslash escapes, as in Ollama; quotes inside are kept);
- a ``\"\"\"`` block that may span lines: the text between the quotes, verbatim. The block ends at the first run
  of three or more quotes; when the run is longer, its leading quotes belong to the text (so a text may end
  with ``"`` or ``""``). Only whitespace may follow the closing quotes on their line.

No text, however written, may contain ``\"\"\"``: `parse` refuses one and `render` cannot write one.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from dataclasses import dataclass, field
from typing import Any

from camelid.engine.options import Options, coerce_option
from camelid.errors import BadRequest

__all__ = ["MESSAGE_ROLES", "Modelfile", "parse", "render", "render_parameters"]

MESSAGE_ROLES = ("system", "user", "assistant", "tool")

TRIPLE = '"""'
_QUOTE_RUN = re.compile(r'"{3,}')
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_]+")

# Each option's default gives its type (Options is a frozen dataclass whose fields all have plain defaults).
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Options)}
_TRUE = frozenset({"1", "true", "yes", "on"})  # what coerce_option reads as True
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass
class Modelfile:
    """One Modelfile. `parameters` keeps the PARAMETER lines as written; `parameter_values` types them."""

    from_: str
    parameters: list[tuple[str, str]]  # as written, in order (raw string values, quotes removed)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)  # (role, content)

    def parameter_values(self) -> dict[str, Any]:
        """The parameters typed as `Options` types them: every `stop` collected into a list, the last
        value of any other name winning (as in Ollama)."""
        values: dict[str, Any] = {}
        for name, raw in self.parameters:
            value = _typed_parameter(name, raw, "")
            if name == "stop":
                values.setdefault("stop", []).append(value)
            else:
                values[name] = value
        return values


# --------------------------------------------------------------------------------------------- parsing


def parse(text: str) -> Modelfile:
    """Read a Modelfile. Raises `BadRequest` naming the line for anything Ollama would refuse."""
    lines = text.removeprefix("\ufeff").split("\n")
    from_: str | None = None
    parameters: list[tuple[str, str]] = []
    template: str | None = None
    system: str | None = None
    adapters: list[str] = []
    licenses: list[str] = []
    messages: list[tuple[str, str]] = []

    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].lstrip()  # the end stays: a """ block may begin with trailing spaces
        if not line.strip() or line.startswith("#"):
            i += 1
            continue
        word, rest = _split_word(line)
        keyword = word.lower()
        if keyword in ("parameter", "message"):
            name, rest = _split_word(rest)
            if not name or not rest:
                what = "a name" if keyword == "parameter" else "a role"
                raise BadRequest(f"{keyword.upper()} needs {what} and a value (line {lineno})")
            value, i = _read_value(rest, lines, i)
            if keyword == "parameter":
                if not _PARAMETER_NAME.fullmatch(name) or name not in _DEFAULTS:
                    raise BadRequest(f"unknown parameter {name!r} (line {lineno})")
                _typed_parameter(name, value, f" (line {lineno})")
                parameters.append((name, value))
            else:
                role = name.lower()
                if role not in MESSAGE_ROLES:
                    raise BadRequest(
                        f"invalid message role {name!r} (line {lineno}): must be one of {', '.join(MESSAGE_ROLES)}"
                    )
                messages.append((role, value))
            continue
        if keyword not in ("from", "template", "system", "adapter", "license"):
            raise BadRequest(f"unknown instruction {word!r} (line {lineno})")
        if not rest:
            raise BadRequest(f"{keyword.upper()} needs a value (line {lineno})")
        value, i = _read_value(rest, lines, i)
        if keyword == "from":
            if from_ is not None:
                raise BadRequest(f"FROM given more than once (line {lineno})")
            if not value:
                raise BadRequest(f"FROM needs a model name or path (line {lineno})")
            from_ = value
        elif keyword == "template":
            template = value  # a repeated TEMPLATE or SYSTEM replaces the earlier one, as in Ollama
        elif keyword == "system":
            system = value
        elif keyword == "adapter":
            adapters.append(value)
        else:
            licenses.append(value)

    if from_ is None:
        raise BadRequest("the Modelfile has no FROM line")
    return Modelfile(from_, parameters, template, system, adapters, licenses, messages)


def _split_word(text: str) -> tuple[str, str]:
    """The first whitespace-delimited word of `text` and the rest, with the whitespace between removed."""
    parts = text.lstrip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


def _read_value(rest: str, lines: list[str], i: int) -> tuple[str, int]:
    """Read the value that starts `rest` (the remainder of lines[i], whitespace before it removed).
    Returns the value and the index of the first line after it."""
    lineno = i + 1
    if rest.startswith(TRIPLE):
        parts: list[str] = []
        segment, j = rest[len(TRIPLE) :], i
        while True:
            match = _QUOTE_RUN.search(segment)
            if match:
                parts.append(segment[: match.end() - len(TRIPLE)])
                if segment[match.end() :].strip():
                    raise BadRequest(f'unexpected text after the closing """ (line {j + 1})')
                value = "\n".join(parts)
                break
            parts.append(segment)
            j += 1
            if j == len(lines):
                raise BadRequest(f'unterminated """ block starting on line {lineno}')
            segment = lines[j]
        next_line = j + 1
    elif rest.startswith('"'):
        body = rest.rstrip()
        if len(body) < 2 or not body.endswith('"'):
            raise BadRequest(f"unterminated quoted string (line {lineno}): it must end with '\"' on its line")
        value, next_line = body[1:-1], i + 1
    else:
        value, next_line = rest.strip(), i + 1
    if TRIPLE in value:
        raise BadRequest(f'a value may not contain """ (line {lineno})')
    return value, next_line


def _typed_parameter(name: str, raw: str, where: str) -> Any:
    """`raw` converted to the type of option `name`; `where` (" (line N)" or "") ends any error message."""
    if name not in _DEFAULTS:
        raise BadRequest(f"unknown parameter {name!r}{where}")
    default = _DEFAULTS[name]
    if isinstance(default, tuple):  # stop: one string per line
        return raw
    if isinstance(default, bool):  # coerce_option reads any unknown word as False; a Modelfile is strict
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise BadRequest(f"invalid value {raw!r} for parameter {name}: expected true or false{where}")
        return word in _TRUE
    try:
        return coerce_option(name, raw, default)
    except BadRequest:
        kind = type(default).__name__
        raise BadRequest(f"invalid value {raw!r} for parameter {name}: expected {kind}{where}") from None


# ------------------------------------------------------------------------------------------- rendering


def render(mf: Modelfile) -> str:
    """The Modelfile as text: FROM, TEMPLATE, SYSTEM, PARAMETER, MESSAGE, LICENSE, ADAPTER lines.

    `parse(render(mf)) == mf`. Raises `BadRequest` for what no Modelfile can hold: a text containing
    ``\"\"\"``, an empty FROM, an unknown parameter or an invalid value, an unknown (or not lower-case) role.
    """
    if not mf.from_:
        raise BadRequest("FROM needs a model name or path")
    lines = [f"FROM {_quote(mf.from_, 'FROM')}"]
    if mf.template is not None:
        lines.append(f"TEMPLATE {_quote(mf.template, 'TEMPLATE')}")
    if mf.system is not None:
        lines.append(f"SYSTEM {_quote(mf.system, 'SYSTEM')}")
    for name, raw in mf.parameters:
        if not _PARAMETER_NAME.fullmatch(name):
            raise BadRequest(f"unknown parameter {name!r}")
        _typed_parameter(name, raw, "")
        lines.append(f"PARAMETER {name} {_quote(raw, f'parameter {name}', quote_spaces=True)}")
    for role, content in mf.messages:
        if role not in MESSAGE_ROLES:
            raise BadRequest(f"invalid message role {role!r}: must be one of {', '.join(MESSAGE_ROLES)}")
        lines.append(f"MESSAGE {role} {_quote(content, 'MESSAGE')}")
    lines.extend(f"LICENSE {_quote(text, 'LICENSE')}" for text in mf.licenses)
    lines.extend(f"ADAPTER {_quote(path, 'ADAPTER')}" for path in mf.adapters)
    return "\n".join(lines) + "\n"


def _quote(text: str, what: str, *, quote_spaces: bool = False) -> str:
    """`text` written so that `_read_value` gives it back exactly."""
    if TRIPLE in text:
        raise BadRequest(f'{what}: a text containing """ cannot be written in a Modelfile')
    if not text:
        return '""'
    if "\n" in text or "\r" in text or '"' in text or text != text.strip():
        return TRIPLE + text + TRIPLE
    if quote_spaces and any(c.isspace() for c in text):
        return f'"{text}"'
    return text


def render_parameters(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Typed option values back to (name, text) pairs for `Modelfile.parameters`: one pair per stop string,
    booleans as true/false, floats in their shortest exact form ("0.7", "1", "1e-05"). None values are
    skipped; an unknown name or a value of the wrong type raises `BadRequest`."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        if name not in _DEFAULTS:
            raise BadRequest(f"unknown parameter {name!r}")
        default = _DEFAULTS[name]
        if isinstance(default, tuple):
            try:
                stops = [value] if isinstance(value, str) else list(value)
            except TypeError:
                raise BadRequest(
                    f"parameter stop: expected a string or a list of strings, got {value!r}"
                ) from None
            pairs.extend((name, str(stop)) for stop in stops)
        elif isinstance(default, bool):
            flag = _typed_parameter(name, value, "") if isinstance(value, str) else bool(value)
            pairs.append((name, "true" if flag else "false"))
        elif isinstance(default, float):
            pairs.append((name, _format_float(name, value)))
        else:
            pairs.append((name, str(coerce_option(name, value, default))))
    return pairs


def _format_float(name: str, value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, (float, int)):
        # A numpy float32 and the like: str() gives the shortest digits of its own precision ("0.7"), where
        # float() would widen it to 0.699999988079071.
        text = str(value)
        try:
            float(text)
        except ValueError:
            text = repr(float(value))
    else:
        text = repr(coerce_option(name, value, 0.0))  # shortest text that reads back as the same float
    return text.removesuffix(".0")
