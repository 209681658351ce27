"""Tool calls in a model's generated text, turned back into structured calls for the Ollama/OpenAI server.

The tools themselves reach the prompt through the chat template (its ``tools`` variable). What comes back is
plain text, written in the format the model was tuned on; `tool_format` picks that format from the template
text and `parse_tool_calls` reads it:

- ``hermes`` (Hermes, Qwen 2.5/3, SmolLM, other ChatML models): ``<tool_call>{"name": ..., "arguments": ...}
  </tool_call>`` blocks, one call per block or a JSON array of calls (SmolLM2); a Qwen3-Coder style
  ``<function=NAME><parameter=KEY>VALUE</parameter></function>`` body is read as well.
- ``llama3`` (Llama 3.1/3.2): the message is a JSON object ``{"name": ..., "parameters": {...}}``, or several
  separated by ``;`` or newlines, or a JSON array of them, optionally after ``<|python_tag|>``; after that tag
  also a built-in ``brave_search.call(query="...")`` or, when a ``python``/``code_interpreter`` tool is offered,
  plain code; ``<function=NAME>{...}</function>`` (Llama 3.1's custom-tool format) anywhere.
- ``mistral``: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}]`` and the newer
  ``[TOOL_CALLS]NAME[ARGS]{...}``. Mistral templates refuse tool-call ids that are not 9 alphanumeric
  characters, so these calls get such ids (the model's own when it wrote a valid one).
- ``generic`` (Gemma, templates that say nothing about tools, no template): all of the above markers.

Every style then falls back to: a fenced block (```` ```json ````, ```` ```tool_code ````, ```` ```tool_call ````
or no language) holding JSON calls or Python-style calls ``get_weather(city="Paris")``; bare JSON objects or
arrays anywhere in the text whose objects have ``"name"`` and ``"arguments"``/``"parameters"``; a message that
is nothing but Python-style calls, ``[get_weather(city="Paris"), get_time()]`` (Gemma 3's suggested format).

Only the names of tools that were offered make a call. Anything that does not parse (unknown names, malformed
or truncated JSON, arguments that are not an object) stays in the content; parsing never raises. Arguments may
be an object or a JSON string holding one; ``"parameters"`` is accepted for ``"arguments"``, and the OpenAI
shape ``{"type": "function", "function": {"name": ..., "arguments": ...}}`` too.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

STYLES = ("hermes", "llama3", "mistral", "generic")

_ID_CHARS = string.ascii_lowercase + string.digits
_MISTRAL_ID_CHARS = string.ascii_letters + string.digits


def new_call_id() -> str:
    """An OpenAI-style tool-call id: ``call_`` and 24 random characters from [a-z0-9]."""
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(24))


def new_mistral_call_id() -> str:
    """A Mistral tool-call id: 9 random alphanumeric characters (Mistral templates accept no other)."""
    return "".join(secrets.choice(_MISTRAL_ID_CHARS) for _ in range(9))


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=new_call_id)


class _Call(NamedTuple):
    name: str
    arguments: dict[str, Any]
    id: str | None = None


_Tools = dict[str, dict]  # offered tool name -> its JSON-schema "parameters" (possibly empty)
_Span = tuple[int, int, list[_Call]]  # text[start:end] is replaced by these calls

_DECODER = json.JSONDecoder(strict=False)  # models write raw newlines inside strings (code arguments)

_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL_TAG = "[TOOL_CALLS]"
_FUNCTION_OPEN = "<function="
_MARKERS = {"hermes": (_HERMES_OPEN,), "llama3": (_PYTHON_TAG, _FUNCTION_OPEN), "mistral": (_MISTRAL_TAG,)}
_MARKERS["generic"] = tuple(m for ms in _MARKERS.values() for m in ms)

_FENCE_LANGS = ("", "json", "tool_code", "tool_call", "tool")
_FENCE = re.compile(r"```[ \t]*([A-Za-z_]*)[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL)
_FUNCTION_TAG = re.compile(r"<function=([^>\s]+)>(.*?)</function>", re.DOTALL)
_PARAMETER_TAG = re.compile(r"<parameter=([^>\s]+)>(.*?)</parameter>", re.DOTALL)
_MISTRAL_CALL = re.compile(r"\s*([A-Za-z0-9_.-]+)(?:\[CALL_ID\]([A-Za-z0-9]+))?\[ARGS\]")
_SEPARATORS = re.compile(r"[\s;,]*")
_JSON_START = re.compile(r"[{\[]")
_END_TOKENS = ("<|eom_id|>", "<|eot_id|>")
# What may follow the point where a JSON prefix stops parsing when it is merely cut short: nothing, or the
# beginning of a string, a literal or a number.
_PARTIAL_TAIL = re.compile(
    r'\s*(?:"(?:[^"\\]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*(?:\\(?:u[0-9a-fA-F]{0,3})?)?'
    r"|t(?:r(?:u)?)?|f(?:a(?:l(?:s)?)?)?|n(?:u(?:l)?)?|[-+.eE0-9]*)")
_PYTHONIC_PREFIX = re.compile(r"\[\s*[A-Za-z_][\w.]*(?:\(.*)?", re.DOTALL)


# ---------------------------------------------------------------------------------------------- public API


def tool_format(chat_template: str | None) -> str:
    """The tool-call format a model with this chat template (Jinja or Ollama Go template) writes.

    ``[TOOL_CALLS]`` → "mistral"; ``<tool_call>`` → "hermes"; ``<|python_tag|>``, an ``ipython`` role or
    Llama 3 headers → "llama3"; other ChatML templates (``<|im_start|>``, e.g. SmolLM2's, which has no tool
    section of its own though SmolLM2 was tuned on ``<tool_call>`` output) → "hermes"; anything else, and no
    template (Gemma 3's GGUF ships none), → "generic".
    """
    if not chat_template:
        return "generic"
    if _MISTRAL_TAG in chat_template:
        return "mistral"
    if _HERMES_OPEN in chat_template:
        return "hermes"
    if _PYTHON_TAG in chat_template or "ipython" in chat_template or "<|start_header_id|>" in chat_template:
        return "llama3"
    if "<|im_start|>" in chat_template:
        return "hermes"
    return "generic"


def parse_tool_calls(text: str, tools: list[dict], style: str) -> tuple[str, list[ToolCall]]:
    """Split a finished message into (content, tool calls). With no calls found the text comes back as it was;
    with calls, the content is what is left around them, stripped. An unknown style reads as "generic"."""
    offered = _offered(tools)
    if not offered or not text:
        return text, []
    for finder in _FINDERS.get(style, _FINDERS["generic"]) + _FALLBACKS:
        spans = finder(text, offered)
        if spans:
            break
    else:
        return text, []
    spans.sort(key=lambda span: span[0])
    pieces, calls, pos = [], [], 0
    for start, end, found in spans:
        pieces.append(text[pos:start])
        calls.extend(ToolCall(c.name, c.arguments, c.id or new_call_id()) for c in found)
        pos = end
    pieces.append(text[pos:])
    content = "".join("" if _SEPARATORS.fullmatch(piece) else piece for piece in pieces)
    return content.strip(), calls


def may_be_tool_call(prefix: str, style: str) -> bool:
    """While streaming: whether the message so far could still turn out to be a tool call, so the server should
    hold it back rather than send it as content. True for nothing but whitespace yet, a (partial) marker of the
    style, a fenced JSON/tool_code block, a JSON object or array that is still open or looks like a call, and
    ``[name(`` Python-style call lists; False as soon as the text cannot be any of these."""
    s = prefix.lstrip()
    if not s:
        return True
    for marker in _MARKERS.get(style, _MARKERS["generic"]):
        if s.startswith(marker) or marker.startswith(s):
            return True
    if "```".startswith(s):
        return True
    if s.startswith("```"):
        head, newline, body = s[3:].partition("\n")
        lang = head.strip().lower()
        if not newline:
            return any(known.startswith(lang) for known in _FENCE_LANGS)
        if lang not in _FENCE_LANGS:
            return False
        body = body.lstrip()
        python_ok = lang.startswith("tool") and bool(re.match(r"[A-Za-z_]", body))
        return not body or python_ok or _could_be_call(body)
    return _could_be_call(s)


def ollama_tool_calls(calls: list[ToolCall]) -> list[dict]:
    """Ollama's ``message.tool_calls``: arguments as an object."""
    return [{"function": {"index": i, "name": c.name, "arguments": c.arguments}} for i, c in enumerate(calls)]


def openai_tool_calls(calls: list[ToolCall]) -> list[dict]:
    """OpenAI's ``message.tool_calls`` (and streaming deltas): arguments as a JSON string."""
    return [{"id": c.id, "type": "function", "index": i,
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for i, c in enumerate(calls)]


# ------------------------------------------------------------------------------------- calls from values


def _offered(tools: list[dict] | None) -> _Tools:
    offered: _Tools = {}
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function", tool)
        if isinstance(function, dict) and isinstance(function.get("name"), str) and function["name"]:
            parameters = function.get("parameters")
            offered[function["name"]] = parameters if isinstance(parameters, dict) else {}
    return offered


def _arguments(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            value = _DECODER.decode(raw.strip())
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None
    return None


def _call_from_object(obj: Any, tools: _Tools, require_args: bool) -> _Call | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):  # OpenAI shape {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or name not in tools:
        return None
    key = next((k for k in ("arguments", "parameters") if k in obj), None)
    if key is None and require_args:
        return None
    arguments = _arguments(obj.get(key) if key else None)
    return None if arguments is None else _Call(name, arguments)


def _calls_from_value(value: Any, tools: _Tools, require_args: bool) -> list[_Call] | None:
    """A call object, or a non-empty array of them; None unless every object is a call to an offered tool."""
    calls: list[_Call] = []
    for obj in value if isinstance(value, list) else [value]:
        call = _call_from_object(obj, tools, require_args)
        if call is None:
            return None
        calls.append(call)
    return calls or None


def _leading_json_calls(text: str, pos: int, tools: _Tools, require_args: bool) -> tuple[list[_Call], int]:
    """Calls in the JSON values at text[pos:], separated by whitespace, ``;`` or ``,``; stops at the first thing
    that is not one. Returns (calls, end of the last one) — no calls, end == pos."""
    calls: list[_Call] = []
    end = pos
    while True:
        start = _SEPARATORS.match(text, end).end()
        if start >= len(text) or text[start] not in "{[":
            break
        try:
            value, stop = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            break
        found = _calls_from_value(value, tools, require_args)
        if found is None:
            break
        calls.extend(found)
        end = stop
    return calls, end


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id in ("true", "false", "null"):  # JSON spelling in a Python call
        return {"true": True, "false": False, "null": None}[node.id]
    value = ast.literal_eval(node)
    return json.loads(json.dumps(value))  # tuples → lists; sets, bytes, complex raise TypeError


def _python_call(node: ast.expr, tools: _Tools) -> _Call | None:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
            and len(node.args) == 1 and not node.keywords):
        node = node.args[0]  # Gemma's ```tool_code print(get_weather(...))
    if not isinstance(node, ast.Call) or node.args:
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "call" and isinstance(func.value, ast.Name):
        name = func.value.id  # Llama's built-in tools: brave_search.call(query="...")
    elif isinstance(func, ast.Attribute):
        name = func.attr  # default_api.get_weather(...)
    elif isinstance(func, ast.Name):
        name = func.id
    else:
        return None
    if name not in tools:
        return None
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            return None
        try:
            arguments[keyword.arg] = _literal(keyword.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return _Call(name, arguments)


def _python_calls(source: str, tools: _Tools) -> list[_Call] | None:
    """Python-style calls: one per line, ``print(...)``-wrapped, or a list ``[f(a=1), g(b="x")]``."""
    source = source.strip()
    if "(" not in source:
        return None
    try:
        tree = ast.parse(source, mode="exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    calls: list[_Call] = []
    for statement in tree.body:
        if not isinstance(statement, ast.Expr):
            return None
        value = statement.value
        nodes = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
        for node in nodes:
            call = _python_call(node, tools)
            if call is None:
                return None
            calls.append(call)
    return calls or None


def _parameter_value(raw: str, schema: Any) -> Any:
    value = raw.removeprefix("\n")
    value = value.removesuffix("\n")
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "string":
        return value
    try:
        return _DECODER.decode(value.strip())
    except (ValueError, RecursionError):
        return value


def _function_call(name: str, body: str, tools: _Tools) -> _Call | None:
    if name not in tools:
        return None
    if not body.strip():
        return _Call(name, {})
    if "<parameter=" in body:
        properties = tools[name].get("properties")
        properties = properties if isinstance(properties, dict) else {}
        arguments, pos = {}, 0
        for match in _PARAMETER_TAG.finditer(body):
            if body[pos:match.start()].strip():
                return None
            arguments[match[1]] = _parameter_value(match[2], properties.get(match[1]))
            pos = match.end()
        return _Call(name, arguments) if not body[pos:].strip() else None
    arguments = _arguments(body)
    return None if arguments is None else _Call(name, arguments)


def _function_tag_spans(text: str, tools: _Tools) -> list[_Span]:
    spans = []
    for match in _FUNCTION_TAG.finditer(text):
        call = _function_call(match[1], match[2], tools)
        if call is not None:
            spans.append((match.start(), match.end(), [call]))
    return spans


def _body_calls(body: str, tools: _Tools, require_args: bool = False) -> list[_Call] | None:
    """The calls making up all of `body` (a tool_call block, a fenced block), or None."""
    body = body.strip()
    fenced = _FENCE.fullmatch(body)
    if fenced and fenced[1].lower() in _FENCE_LANGS:
        body = fenced[2].strip()
    if not body:
        return None
    if body[0] in "{[":
        calls, end = _leading_json_calls(body, 0, tools, require_args)
        if calls and _SEPARATORS.fullmatch(body, end):
            return calls
    if _FUNCTION_OPEN in body:
        spans = _function_tag_spans(body, tools)
        if spans and len(spans) == len(_FUNCTION_TAG.findall(body)) and not _FUNCTION_TAG.sub("", body).strip():
            return [c for span in spans for c in span[2]]
    return _python_calls(body, tools)


# ------------------------------------------------------------------------------------------------ finders


def _find_hermes(text: str, tools: _Tools) -> list[_Span]:
    spans: list[_Span] = []
    pos = 0
    while (start := text.find(_HERMES_OPEN, pos)) != -1:
        body_start = start + len(_HERMES_OPEN)
        close = text.find(_HERMES_CLOSE, body_start)
        reopen = text.find(_HERMES_OPEN, body_start)
        if close == -1 or -1 < reopen < close:  # unclosed: the block runs to the next one or to the end
            body_end = end = reopen if reopen != -1 else len(text)
        else:
            body_end, end = close, close + len(_HERMES_CLOSE)
        calls = _body_calls(text[body_start:body_end], tools)
        if calls:
            spans.append((start, end, calls))
        pos = end
    return spans


def _mistral_id(model_id: Any) -> str:
    if isinstance(model_id, str) and len(model_id) == 9 and model_id.isascii() and model_id.isalnum():
        return model_id
    return new_mistral_call_id()


def _find_mistral(text: str, tools: _Tools) -> list[_Span]:
    spans: list[_Span] = []
    pos = 0
    while (start := text.find(_MISTRAL_TAG, pos)) != -1:
        body_start = start + len(_MISTRAL_TAG)
        body_end = text.find(_MISTRAL_TAG, body_start)
        body_end = len(text) if body_end == -1 else body_end
        body = text[:body_end]  # positions stay those of `text`
        calls, end = _leading_json_calls(body, body_start, tools, False)
        if calls:
            ids = _json_ids(body, body_start, len(calls))
            calls = [c._replace(id=_mistral_id(i)) for c, i in zip(calls, ids)]
        while not calls or end < body_end:  # [TOOL_CALLS]name[ARGS]{...} (possibly several)
            match = _MISTRAL_CALL.match(body, end)
            if not match or match[1] not in tools:
                break
            try:
                raw, stop = _DECODER.raw_decode(body, _SEPARATORS.match(body, match.end()).end())
            except (ValueError, RecursionError):
                break
            arguments = _arguments(raw)
            if arguments is None:
                break
            calls.append(_Call(match[1], arguments, _mistral_id(match[2])))
            end = stop
        if calls:
            spans.append((start, end, calls))
        pos = body_end
    return spans


def _json_ids(text: str, pos: int, count: int) -> list[Any]:
    """The "id" fields of the call objects that `_leading_json_calls` just read (Mistral writes them)."""
    ids: list[Any] = []
    end = pos
    while len(ids) < count:
        value, end = _DECODER.raw_decode(text, _SEPARATORS.match(text, end).end())
        for obj in value if isinstance(value, list) else [value]:
            ids.append(obj.get("id"))
    return ids[:count]


def _find_llama3(text: str, tools: _Tools) -> list[_Span]:
    spans: list[_Span] = []
    start = text.find(_PYTHON_TAG)
    if start != -1:
        body_start = start + len(_PYTHON_TAG)
        body = text[body_start:]
        for token in _END_TOKENS:
            body = body.removesuffix(token)
        calls, end = _leading_json_calls(text, body_start, tools, False)
        if calls:
            if text[end:].strip() in _END_TOKENS:
                end = len(text)
            spans.append((start, end, calls))
        elif (python := _python_calls(body, tools)) is not None:
            spans.append((start, len(text), python))
        else:
            interpreter = next((n for n in ("code_interpreter", "python") if n in tools), None)
            if interpreter and body.strip() and not body.lstrip().startswith(("{", "[")):
                spans.append((start, len(text), [_Call(interpreter, {"code": body.strip()})]))
    taken = spans[0][:2] if spans else (0, 0)
    spans += [s for s in _function_tag_spans(text, tools) if s[1] <= taken[0] or s[0] >= taken[1]]
    return spans


def _find_markers(text: str, tools: _Tools) -> list[_Span]:
    for finder in (_find_hermes, _find_mistral, _find_llama3):
        spans = finder(text, tools)
        if spans:
            return spans
    return []


def _find_fenced(text: str, tools: _Tools) -> list[_Span]:
    spans: list[_Span] = []
    for match in _FENCE.finditer(text):
        if match[1].lower() in _FENCE_LANGS and (calls := _body_calls(match[2], tools)):
            spans.append((match.start(), match.end(), calls))
    return spans


def _find_bare_json(text: str, tools: _Tools) -> list[_Span]:
    if '"name"' not in text:
        return []
    spans: list[_Span] = []
    pos = 0
    while (match := _JSON_START.search(text, pos)) is not None:
        start = match.start()
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        calls = _calls_from_value(value, tools, True)
        if calls:
            spans.append((start, end, calls))
        pos = end
    return spans


def _find_pythonic(text: str, tools: _Tools) -> list[_Span]:
    stripped = text.strip()
    calls = _python_calls(stripped, tools) if stripped[:1] == "[" or stripped[:1].isidentifier() else None
    if not calls:
        return []
    start = len(text) - len(text.lstrip())
    return [(start, start + len(stripped), calls)]


_Finder = Callable[[str, _Tools], list[_Span]]
_FINDERS: dict[str, list[_Finder]] = {"hermes": [_find_hermes], "llama3": [_find_llama3],
                                      "mistral": [_find_mistral], "generic": [_find_markers]}
_FALLBACKS: list[_Finder] = [_find_fenced, _find_bare_json, _find_pythonic]


# ------------------------------------------------------------------------------------------- streaming


def _looks_like_call(value: Any) -> bool:
    objects = value if isinstance(value, list) else [value]
    return bool(objects) and all(
        isinstance(o, dict) and (isinstance(o.get("name"), str) or isinstance(o.get("function"), dict))
        for o in objects)


def _could_be_call(s: str) -> bool:
    """`s` (no leading whitespace) is an unfinished JSON object/array, one that looks like a call, or the start
    of a Python-style call list."""
    if s[0] in "{[":
        try:
            value, _ = _DECODER.raw_decode(s)
        except RecursionError:
            return False
        except ValueError as error:
            if _PARTIAL_TAIL.fullmatch(s, getattr(error, "pos", len(s))):
                return True
        else:
            return _looks_like_call(value)
    return bool(_PYTHONIC_PREFIX.fullmatch(s))


TOOLS_PROMPT = (
    "You are a function calling AI model. You are provided with function signatures within <tools></tools> XML "
    "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
    "values to plug into functions. Here are the available tools:\n<tools>\n{tools}\n</tools>\n"
    "For each function call, return a JSON object with the function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": "
    "<args-dict>}}\n</tool_call>"
)


def with_tools_prompt(messages: list[dict[str, Any]], tools: list[dict]) -> list[dict[str, Any]]:
    """For a chat template that cannot render tools: describe them (Hermes style, which `parse_tool_calls`
    reads back) in the system message, creating one when the conversation has none."""
    text = TOOLS_PROMPT.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{text}".strip()
    else:
        out.insert(0, {"role": "system", "content": text})
    return out
