"""Ollama's way of executing a chat template: `render_ollama`.

`render_ollama` reproduces Ollama's ``template.(*Template).Execute`` (template/template.go) fed the way its chat
handler feeds it (server/routes.go, server/prompt.go): messages collated (consecutive same-role messages joined
by a blank line, except tool messages), ``.System`` = all system messages joined by a blank line, and either one
execution with ``.Messages`` (when the template mentions ``messages``) or, for legacy templates, one execution
per system/user/assistant exchange with ``.System``/``.Prompt``/``.Response``, the last one cut after
``{{ .Response }}``. Messages, tool calls and tools are exposed as Ollama's template structs (``.Role``,
``.ToolCalls``, ``.Function.Arguments`` ...) whose JSON and printing follow Go's ``encoding/json`` and ``fmt``
(`camelid.tokenizer.gofmt`). The template language itself is `camelid.tokenizer.gotemplate`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from camelid.errors import BadRequest
from camelid.tokenizer.gofmt import _GoMap, _GoSlice, _PropType, _Struct
from camelid.tokenizer.gotemplate import TemplateError, _Action, _Branch, _execute, _Field, _Pipe, parse

__all__ = ["render_ollama"]


def _cut_after_response(root: list[Any]) -> list[Any]:
    """Ollama's deleteNode: a copy of the tree without every node after the first ``.Response`` field."""
    cut = False

    def walk(n: Any) -> Any:
        nonlocal cut
        if isinstance(n, _Field) and "Response" in n.names:
            cut = True
            return n
        if cut:
            return None
        if isinstance(n, list):
            return [c for c in map(walk, n) if c is not None]
        if isinstance(n, _Branch):  # the branch's own pipeline is not searched, as in Ollama
            body = walk(n.body)
            if cut and n.orelse is not None:  # Ollama's deleteNode panics on this shape
                raise TemplateError("a legacy template with {{ .Response }} inside a block that has an {{else}} "
                                    "cannot be rendered (Ollama fails on it too)")
            return _Branch(n.pos, n.kind, n.pipe, body, None if n.orelse is None else walk(n.orelse))
        if isinstance(n, _Action):
            pipe = walk(n.pipe)
            return None if pipe is None else _Action(n.pos, pipe)
        if isinstance(n, _Pipe):
            cmds = []
            for args in n.cmds:
                if not (kept := [a for a in map(walk, args) if a is not None]):
                    return None
                cmds.append(kept)
            return _Pipe(n.pos, n.decls, n.assign, cmds)
        return n

    return walk(root)


@lru_cache(maxsize=256)
def _legacy_roots(template: str) -> tuple[list[Any], list[Any]]:
    """A legacy template's tree as Ollama's Parse leaves it (``{{ .Response }}`` appended when the template has
    none), and that tree cut after its first ``.Response`` (for the last exchange)."""
    tmpl = parse(template)
    response_node = _Action(len(template), _Pipe(len(template), [], False, [[_Field(len(template), ("Response",))]]))
    full = tmpl.root + ([response_node] if "response" not in tmpl.identifiers() else [])
    return full, _cut_after_response(full)


def _go_any(v: Any) -> Any:
    """A JSON value as Go decodes it into ``any``: every number becomes a float64."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _go_any(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_go_any(x) for x in v]
    return v


_PROP_JSON = (("AnyOf", "anyOf", "empty"), ("Type", "type", "empty"), ("Items", "items", "nil"),
              ("Description", "description", "empty"), ("Enum", "enum", "empty"),
              ("Properties", "properties", "nil"), ("Required", "required", "empty"))


def _slice_of(items: Any, stringer: bool = False) -> _GoSlice:
    """A Go slice decoded from JSON: nil when there were no items."""
    items = list(items)
    return _GoSlice(items, nil=not items, stringer=stringer)


def _property(p: dict) -> _Struct:
    t, props = p.get("type"), p.get("properties")
    return _Struct("api.ToolProperty", {
        "AnyOf": _slice_of(map(_property, p.get("anyOf") or [])),
        "Type": _PropType([t] if isinstance(t, str) else t or []), "Items": _go_any(p.get("items")),
        "Description": p.get("description") or "", "Enum": _slice_of(_go_any(p.get("enum") or [])),
        "Properties": None if props is None else _GoMap({k: _property(x) for k, x in props.items()}, ordered=True),
        "Required": _slice_of(p.get("required") or [])}, _PROP_JSON)


def _tool(tool: dict) -> _Struct:
    fn = tool.get("function") or {}
    params = fn.get("parameters") or {}
    props = params.get("properties")
    parameters = _Struct("template.templateToolFunctionParameters", {
        "Type": params.get("type") or "", "Defs": _go_any(params.get("$defs")), "Items": _go_any(params.get("items")),
        "Required": _slice_of(params.get("required") or []),
        "Properties": _GoMap({k: _property(x) for k, x in (props or {}).items()}, nil=props is None,
                             stringer=True)},
        (("Type", "type", ""), ("Defs", "$defs", "nil"), ("Items", "items", "nil"),
         ("Required", "required", "empty"), ("Properties", "properties", "")))
    function = _Struct("template.templateToolFunction", {
        "Name": fn.get("name") or "", "Description": fn.get("description") or "", "Parameters": parameters},
        (("Name", "name", ""), ("Description", "description", ""), ("Parameters", "parameters", "")))
    return _Struct("template.templateTool", {
        "Type": tool.get("type") or "", "Items": _go_any(tool.get("items")), "Function": function},
        (("Type", "type", ""), ("Items", "items", "nil"), ("Function", "function", "")), stringer=True)


def _tool_call(call: dict) -> _Struct:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    if isinstance(args, str):  # an OpenAI-style JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise BadRequest(f"tool call arguments are not a JSON object: {args[:80]!r}") from None
    if args is not None and not isinstance(args, dict):
        raise BadRequest("tool call arguments must be a JSON object")
    arguments = _GoMap(_go_any(args or {}), nil=args is None, stringer=True)
    return _Struct("template.templateToolCall", {"ID": call.get("id") or "", "Function": _Struct(
        "template.templateToolCallFunction",
        {"Index": int(fn.get("index") or 0), "Name": fn.get("name") or "", "Arguments": arguments})})


def _message(m: dict) -> _Struct:
    calls = m.get("tool_calls") or []
    return _Struct("template.templateMessage", {
        "Role": m["role"], "Content": m["content"], "Thinking": m.get("thinking") or "",
        "Images": _slice_of(m.get("images") or []), "ToolCalls": _slice_of(map(_tool_call, calls)),
        "ToolName": m.get("tool_name") or "", "ToolCallID": m.get("tool_call_id") or ""}, pointer=True)


def _normalize(m: dict) -> dict:
    if not isinstance(m, dict):
        raise BadRequest(f"a chat message must be an object, not {type(m).__name__}")
    content = m.get("content")
    if content is not None and not isinstance(content, str):
        raise BadRequest("a chat message's content must be a string")
    return {**m, "role": str(m.get("role") or "").lower(), "content": content or ""}


def render_ollama(template: str, messages: list[dict], *, tools: list[dict] | None = None,
                  system: str | None = None, response: str = "", think: bool | str | None = None) -> str:
    """Render an Ollama TEMPLATE for a chat exactly as Ollama's server does.

    ``messages`` use Ollama's API keys (role, content, thinking, images, tool_calls, tool_name, tool_call_id);
    ``tools`` are API tool objects. ``system`` is the model's default SYSTEM prompt, put first unless the chat
    starts with a system message (Ollama's chat handler). A non-empty ``response`` is appended as an assistant
    message: the partial reply to continue (a legacy template is then rendered up to and including it).
    ``think`` is the request's think value (bool or "low"/"medium"/"high"), exposed as ``.Think``,
    ``.ThinkLevel`` and ``.IsThinkSet``.
    """
    tmpl = parse(template)
    msgs = [_normalize(m) for m in messages]
    if system and (not msgs or msgs[0]["role"] != "system"):
        msgs.insert(0, {"role": "system", "content": system})
    if response:
        msgs.append({"role": "assistant", "content": response})
    collated: list[dict] = []
    for m in msgs:
        if collated and collated[-1]["role"] == m["role"] and m["role"] != "tool":
            collated[-1]["content"] += "\n\n" + m["content"]
        else:
            collated.append(dict(m))
    level = think if isinstance(think, str) else ("medium" if think else "")
    thinking = {"Think": think in (True, "high", "medium", "low", "max"), "ThinkLevel": level,
                "IsThinkSet": think is not None}
    if "messages" in tmpl.identifiers():
        system_text = "\n\n".join(m["content"] for m in msgs if m["role"] == "system")
        return tmpl.render({"System": system_text, "Messages": [_message(m) for m in collated],
                            "Tools": _GoSlice(map(_tool, tools or []), nil=tools is None, stringer=True),
                            "Response": "", **thinking})
    full, cut = _legacy_roots(template)
    out, values = [], {"System": "", "Prompt": "", "Response": ""}
    for m in collated:
        role = m["role"]
        if (role == "system" and (values["Prompt"] or values["Response"])) or (role == "user" and values["Response"]):
            out.append(_execute(template, full, {**values, **thinking}))
            values = {"System": "", "Prompt": "", "Response": ""}
        key = {"system": "System", "user": "Prompt", "assistant": "Response"}.get(role)
        if key:
            values[key] = m["content"]
    out.append(_execute(template, cut, {**values, **thinking}))
    return "".join(out)

