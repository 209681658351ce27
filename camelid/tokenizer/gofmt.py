"""Go values for the template interpreter: literals, field access and range, fmt and json printing, builtins.

Used by `camelid.tokenizer.gotemplate` (the language) and `camelid.tokenizer.ollama_template` (Ollama's data).
Python None/bool/int/float/str/list/dict stand for Go's nil, bool, int, float64, string, slices and maps;
`_Struct`, `_GoMap`, `_GoSlice` and `_PropType` model Ollama's template structs (JSON tags, nil slices and maps,
String() methods). `_literal` reads a Go string, character or number literal (``strconv``); `_field` and
`_range_items` are how ``.Name`` and ``range`` see a value; `_fmt_v` is fmt's ``%v``, `_printf` is
``fmt.Sprintf`` and `_json` is ``encoding/json``'s Marshal. `_FUNCS` is the FuncMap every template is parsed
with: text/template's builtins plus Ollama's ``json currentDate yesterdayDate toTypeScriptType`` (Ollama always
parses with them, so they live here rather than with `render_ollama`).
"""

from __future__ import annotations

import datetime
import itertools
import math
import re
from dataclasses import fields, is_dataclass
from typing import Any


class _FuncError(Exception):
    """Raised by a builtin (becomes ``error calling NAME: ...``) or by `_field` (becomes the error itself)."""


# ----------------------------------------------------------------------------------------------------- Go literals

_RE_STRING = re.compile(r'"(?:[^"\\\n]|\\[^\n])*"')
_RE_CHAR = re.compile(r"'(?:[^'\\\n]|\\[^\n])*'")
_RE_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?|0[oObB][0-7_]*"
                        r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?")
_RE_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")
_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
               "'": "'", '"': '"'}


def _unquote(raw: str, quote: str) -> str:
    """Go's strconv.Unquote for "..." and '...' literals (escapes \\x and \\ooo are bytes)."""
    body, out, i = raw[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] != "\\":
            out += body[i].encode("utf-8", "surrogatepass")
            i += 1
            continue
        m = _RE_ESCAPE.match(body, i)
        if not m or (m.group(1) and m.group(1) in "'\"" and m.group(1) != quote):
            raise ValueError(f"invalid escape in {raw}")
        simple, hx, octal, u4, u8 = m.groups()
        if simple:
            out += _SIMPLE_ESC[simple].encode()
        elif hx or octal:
            value = int(hx, 16) if hx else int(octal, 8)
            if value > 255:
                raise ValueError(f"invalid octal escape in {raw}")
            out.append(value)
        else:
            out += chr(int(u4 or u8, 16)).encode("utf-8", "surrogatepass")
        i = m.end()
    return out.decode("utf-8", "replace")


def _number(text: str) -> int | float:
    """A Go number literal: ints (decimal, 0x, 0o, 0b, leading-0 octal) or floats (with '.', 'e' or 'p')."""
    if text.endswith("i"):
        raise ValueError("complex numbers are not supported")
    t = text.replace("_", "")
    sign, body = (-1 if t[0] == "-" else 1), t.lstrip("+-")
    low = body.lower()
    if low.startswith("0x"):
        return sign * (float.fromhex(body) if ("p" in low or "." in low) else int(body, 16))
    if low.startswith(("0o", "0b")):
        return sign * int(body, 0)
    if "." in low or "e" in low:
        return sign * float(body)
    return sign * (int(body, 8) if len(body) > 1 and body[0] == "0" else int(body))


def _literal(src: str, k: int) -> tuple[str, Any, int]:
    """The literal at ``src[k]`` (string, raw string, character or number) as (token kind, value, end); a
    ValueError carries text/template's message."""
    c = src[k]
    if c == "`":
        end = src.find("`", k + 1)
        if end < 0:
            raise ValueError("unterminated raw quoted string")
        return "string", src[k + 1:end], end + 1
    if c in "\"'":
        m = (_RE_STRING if c == '"' else _RE_CHAR).match(src, k)
        if not m:
            raise ValueError("unterminated quoted string" if c == '"' else "unterminated character constant")
        text = _unquote(m.group(), c)
        if c == "'" and len(text) != 1:
            raise ValueError(f"malformed character constant: {m.group()}")
        return ("string", text, m.end()) if c == '"' else ("number", ord(text), m.end())
    end = _RE_NUMBER.match(src, k).end()
    try:
        if end < len(src) and (src[end].isalnum() or src[end] in "_+-"):
            raise ValueError
        return "number", _number(src[k:end]), end
    except ValueError:
        raise ValueError(f"bad number syntax: {src[k:end + 1]!r}") from None


# ----------------------------------------------------------------------------------------------------- Go values


class _Struct:
    """A Go struct value: ``fields`` in declaration order; ``json`` = (field, json name, omit) with omit ""
    (never), "empty" (Go omitempty on strings/slices/maps) or "nil" (omitempty on interfaces/pointers)."""

    __slots__ = ("fields", "go_type", "json", "pointer", "stringer")

    def __init__(self, go_type: str, values: dict[str, Any], tags: tuple[tuple[str, str, str], ...] = (),
                 stringer: bool = False, pointer: bool = False) -> None:
        self.go_type, self.fields, self.json, self.stringer, self.pointer = go_type, values, tags, stringer, pointer


class _GoMap(dict):
    """A Go map: ``nil`` map, ``stringer`` (a String() method printing JSON), ``ordered`` (insertion-order JSON)."""

    def __init__(self, items: Any = (), *, nil: bool = False, stringer: bool = False, ordered: bool = False) -> None:
        super().__init__(items)
        self.nil, self.stringer, self.ordered = nil, stringer, ordered


class _GoSlice(list):
    """A Go slice that may be nil (JSON ``null``) and may print as JSON (a String() method)."""

    def __init__(self, items: Any = (), *, nil: bool = False, stringer: bool = False) -> None:
        super().__init__(items)
        self.nil, self.stringer = nil, stringer


class _PropType(list):
    """Ollama's api.PropertyType: one JSON type name or several."""


def _kind(v: Any) -> str:
    if v is None:
        return "nil"
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "string")):
        if isinstance(v, t):
            return name
    return "other"


def _go_type(v: Any) -> str:
    if isinstance(v, _Struct):
        return ("*" if v.pointer else "") + v.go_type
    names = {"bool": "bool", "int": "int", "float": "float64", "string": "string"}
    return names.get(_kind(v)) or ("map[string]interface {}" if isinstance(v, dict) else
                                   "[]interface {}" if isinstance(v, (list, tuple)) else type(v).__name__)


def _truth(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float)):
        return bool(v)
    try:
        return len(v) > 0
    except TypeError:
        return True  # structs and other objects


def _digits(x: float) -> tuple[str, int]:
    """Shortest round-trip digits of abs(x) and the decimal point position: x = 0.DIGITS * 10**dp."""
    mant, _, exp = repr(abs(x)).partition("e")
    ip, _, fp = mant.partition(".")
    allds = ip + fp
    stripped = allds.lstrip("0")
    return stripped.rstrip("0"), len(ip) + int(exp or 0) - (len(allds) - len(stripped))


def _format_float(x: float, fmt: str) -> str:
    """Go strconv.FormatFloat(x, fmt, -1, 64) for fmt 'g' (fmt %v) or 'f'/'e' (shortest digits)."""
    if math.isnan(x) or math.isinf(x):
        return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")
    ds, dp = _digits(x)
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if not ds:
        return sign + "0"
    if fmt == "g":
        fmt = "e" if dp - 1 < -4 or dp - 1 >= 6 else "f"
    if fmt == "e":
        exp = dp - 1
        return f"{sign}{ds[0]}{'.' + ds[1:] if len(ds) > 1 else ''}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{ds}"
    return sign + (ds + "0" * (dp - len(ds)) if dp >= len(ds) else f"{ds[:dp]}.{ds[dp:]}")


def _sorted_items(d: dict) -> list[tuple[Any, Any]]:
    items = list(d.items())
    if isinstance(d, _GoMap) and d.ordered:
        return items
    try:
        return sorted(items, key=lambda kv: kv[0])
    except TypeError:
        return sorted(items, key=lambda kv: str(kv[0]))


def _field(receiver: Any, name: str, has_args: bool) -> Any:
    """Go's ``receiver.NAME``: a struct field, a map key (nil when missing) or an object's attribute."""
    if receiver is None:
        raise _FuncError(f"nil pointer evaluating interface {{}}.{name}")
    if isinstance(receiver, _Struct):
        if name not in receiver.fields:
            raise _FuncError(f"can't evaluate field {name} in type {_go_type(receiver)}")
        value = receiver.fields[name]
    elif isinstance(receiver, dict):
        if has_args:
            raise _FuncError(f"{name} is not a method but has arguments")
        value = receiver.get(name)
    elif _kind(receiver) != "other" or isinstance(receiver, (list, tuple)) or name.startswith("_") \
            or not hasattr(receiver, name):
        raise _FuncError(f"can't evaluate field {name} in type {_go_type(receiver)}")
    else:
        value = getattr(receiver, name)
    if has_args:
        raise _FuncError(f"{name} has arguments but cannot be invoked as function")
    return value


def _range_items(value: Any) -> Any:
    """The (key, element) pairs Go's ``range`` visits: dicts in key order, slices, ints; None: not rangeable."""
    if value is None:
        return ()
    if isinstance(value, dict):
        return _sorted_items(value)
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    if _kind(value) == "int":
        return ((i, i) for i in range(value))
    return None


def _fmt_v(v: Any, top: bool = True) -> str:
    """Go's fmt %v (Stringer types print their JSON, as Ollama's template types do)."""
    if v is None:
        return "<nil>"
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _format_float(v, "g")
    if isinstance(v, _PropType):
        return v[0] if len(v) == 1 else ("[" + " ".join(v) + "]" if v else "")
    if isinstance(v, (_Struct, _GoMap, _GoSlice)) and v.stringer:
        return "{}" if isinstance(v, _GoMap) and v.nil else _json(v)
    if isinstance(v, _Struct) or is_dataclass(v) and not isinstance(v, type):
        values = v.fields.values() if isinstance(v, _Struct) else [getattr(v, f.name) for f in fields(v)]
        amp = "&" if top and isinstance(v, _Struct) and v.pointer else ""
        return amp + "{" + " ".join(_fmt_v(x, False) for x in values) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_v(x, False) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{_fmt_v(k, False)}:{_fmt_v(x, False)}" for k, x in _sorted_items(v)) + "]"
    return str(v)


_RE_JSON_ESC = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _json(v: Any) -> str:
    """Go's json.Marshal: compact, map keys sorted, <>& escaped as \\u003c..., float64 formatting."""
    if v is None:
        return "null"
    if isinstance(v, str):
        return '"' + _RE_JSON_ESC.sub(lambda m: _JSON_ESC.get(m[0]) or f"\\u{ord(m[0]):04x}", v) + '"'
    if isinstance(v, (bool, int)):
        return _fmt_v(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise _FuncError(f"json: unsupported value: {_fmt_v(v)}")
        return _format_float(v, "e" if v and not 1e-6 <= abs(v) < 1e21 else "f").replace("e-0", "e-")
    if isinstance(v, _PropType) and len(v) == 1:
        return _json(v[0])
    if isinstance(v, (_GoSlice, _GoMap)) and v.nil:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(map(_json, v)) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{_json(str(k))}:{_json(x)}" for k, x in _sorted_items(v)) + "}"
    if isinstance(v, _Struct):
        parts = []
        for name, key, omit in v.json or tuple((k, k, "") for k in v.fields):
            x = v.fields[name]
            empty = x is None or (omit == "empty" and (x is False or x == "" or (_kind(x) in ("int", "float") and
                                                                                   x == 0) or x == [] or x == {}))
            if not (omit and empty):
                parts.append(f"{_json(key)}:{_json(x)}")
        return "{" + ",".join(parts) + "}"
    if is_dataclass(v) and not isinstance(v, type):
        return _json({f.name: getattr(v, f.name) for f in fields(v)})
    raise _FuncError(f"json: unsupported type {type(v).__name__}")


# ----------------------------------------------------------------------------------------------------- builtins


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    raise _FuncError(f"len of type {_go_type(v)}")


def _int_arg(i: Any, cap: int) -> int:
    if _kind(i) != "int":
        raise _FuncError("cannot index slice/array with " + ("nil" if i is None else f"type {_go_type(i)}"))
    if not 0 <= i <= cap:
        raise _FuncError(f"index out of range: {i}")
    return i


def _index(item: Any, *indexes: Any) -> Any:
    for i in indexes:
        if item is None:
            raise _FuncError("index of untyped nil")
        if isinstance(item, (list, tuple, str)):
            seq = item.encode() if isinstance(item, str) else item
            if _int_arg(i, len(seq)) == len(seq):
                raise _FuncError(f"index out of range: {i}")
            item = seq[i]
        elif isinstance(item, dict):
            item = item.get(i)
        else:
            raise _FuncError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if not isinstance(item, (str, list, tuple)):
        raise _FuncError(f"can't slice item of type {_go_type(item)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise _FuncError("cannot 3-index slice a string")
    seq = item.encode() if isinstance(item, str) else item
    idx = [0, len(seq)]
    for n, i in enumerate(indexes):
        idx[n:n + 1] = [_int_arg(i, len(seq))]
    for a, b in itertools.pairwise(idx):
        if a > b:
            raise _FuncError(f"invalid slice index: {a} > {b}")
    part = seq[idx[0]:idx[1]]
    return part.decode("utf-8", "replace") if isinstance(item, str) else list(part)


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
    for b in others:
        ka, kb = _kind(a), _kind(b)
        if ka != kb and "nil" not in (ka, kb):
            raise _FuncError("incompatible types for comparison")
        if ka == kb == "other" and (isinstance(a, (list, dict)) or isinstance(b, (list, dict))):
            raise _FuncError(f"non-comparable type {_go_type(a)}")
        if (a is b) if ka == kb == "other" else (ka == kb and a == b):
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if {ka, kb} & {"nil", "bool", "other"}:
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return a < b


def _sprint(*args: Any) -> str:
    out = []
    for n, a in enumerate(args):
        if n and not isinstance(a, str) and not isinstance(args[n - 1], str):
            out.append(" ")
        out.append(_fmt_v(a))
    return "".join(out)


def _go_quote(s: str) -> str:
    esc = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}

    def one(ch: str) -> str:
        if ch in '"\\':
            return "\\" + ch
        if ch.isprintable():
            return ch
        o = ord(ch)
        return esc.get(ch) or (f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")

    return '"' + "".join(map(one, s)) + '"'


_RE_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?(.?)", re.DOTALL)


def _fmt_verb(verb: str, prec: int | None, arg: Any) -> str | None:
    """One printf operand, or None for a verb that does not fit the operand's type."""
    k = _kind(arg)
    if verb == "v":
        return _fmt_v(arg)
    if verb == "s":
        if k == "string":
            return arg if prec is None else arg[:prec]
        if isinstance(arg, _PropType) or isinstance(arg, (_Struct, _GoMap, _GoSlice)) and arg.stringer:
            return _fmt_v(arg)
        if isinstance(arg, (list, tuple)):
            return "[" + " ".join(_fmt_verb("s", prec, x) or _bad("s", x) for x in arg) + "]"
        return None
    if verb == "q" and k in ("string", "int"):
        if k == "string":
            return _go_quote(arg)
        return "'" + {"'": "\\'", '"': '"'}.get(chr(arg), _go_quote(chr(arg))[1:-1]) + "'"
    if k == "int" and verb in "dxXcob":
        return chr(arg) if verb == "c" else format(arg, verb)
    if k == "string" and verb in "xX":
        return arg.encode().hex() if verb == "x" else arg.encode().hex().upper()
    if k == "bool" and verb == "t":
        return _fmt_v(arg)
    if k == "float" and verb in "eEfFgG":
        if prec is None and verb in "gG":
            return _format_float(arg, "g")
        return format(arg, f".{6 if prec is None else prec}{verb}")
    return None


def _bad(verb: str, arg: Any) -> str:
    return f"%!{verb}(<nil>)" if arg is None else f"%!{verb}({_go_type(arg)}={_fmt_v(arg)})"


def _printf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the common verbs (v s d q t x X c o b e f g) with flags, width and precision."""
    if not isinstance(fmt, str):
        raise _FuncError(f"wrong type for value; expected string; got {_go_type(fmt)}")
    out, n, pos = [], 0, 0
    while (j := fmt.find("%", pos)) >= 0:
        out.append(fmt[pos:j])
        m = _RE_VERB.match(fmt, j)
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        pos = m.end()
        if verb == "%":
            out.append("%")
            continue
        if not verb:
            out.append("%!(NOVERB)")
            continue
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg, n = args[n], n + 1
        s = _fmt_verb(verb, int(prec or 0) if prec is not None else None, arg)
        if s is None:
            out.append(_bad(verb, arg))
            continue
        if "+" in flags and _kind(arg) in ("int", "float") and not s.startswith("-"):
            s = "+" + s
        if width and len(s) < int(width):
            pad = int(width) - len(s)
            if "-" in flags:
                s += " " * pad
            elif "0" in flags and _kind(arg) in ("int", "float"):
                sign = s[0] if s[0] in "+-" else ""
                s = sign + "0" * pad + s[len(sign):]
            else:
                s = " " * pad + s
        out.append(s)
    out.append(fmt[pos:])
    if n < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_go_type(a)}={_fmt_v(a)}" for a in args[n:]) + ")")
    return "".join(out)


def _json_func(v: Any) -> str:
    try:
        return _json(v)
    except _FuncError:
        return ""  # Ollama ignores json.Marshal's error and returns string(nil)


def _date(days: int) -> Any:
    return lambda *args: (datetime.date.today() - datetime.timedelta(days=days)).isoformat()


_TS_TYPES = {"string": "string", "number": "number", "integer": "number", "boolean": "boolean",
             "array": "any[]", "object": "Record<string, any>", "null": "null"}


def _ts_type(v: Any) -> str:
    """Ollama's toTypeScriptType: api.ToolProperty -> TypeScript type; anything else -> "any"."""
    if not (isinstance(v, _Struct) and v.go_type == "api.ToolProperty"):
        return "any"
    if v.fields["AnyOf"]:
        return " | ".join(map(_ts_type, v.fields["AnyOf"]))
    return " | ".join(_TS_TYPES.get(t, "any") for t in v.fields["Type"]) or "any"


# name -> (function, min args, max args or None); and/or are evaluated lazily by _Exec.call
_FUNCS: dict[str, tuple[Any, int, int | None]] = {
    "and": (None, 1, None), "or": (None, 1, None), "not": (lambda v: not _truth(v), 1, 1),
    "len": (_len, 1, 1), "index": (_index, 1, None), "slice": (_slice, 1, None),
    "eq": (_eq, 1, None), "ne": (lambda a, b: not _eq(a, b), 2, 2), "lt": (_lt, 2, 2),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), 2, 2), "gt": (lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2), "print": (_sprint, 0, None), "printf": (_printf, 1, None),
    "println": (lambda *a: " ".join(map(_fmt_v, a)) + "\n", 0, None),
    "json": (_json_func, 1, 1), "currentDate": (_date(0), 0, None), "yesterdayDate": (_date(1), 0, None),
    "toTypeScriptType": (_ts_type, 1, 1),
}
