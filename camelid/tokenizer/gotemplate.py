"""Go ``text/template``: the subset Ollama chat templates use (lexer, parser, executor).

`parse` turns a template into a `Template` (cached); `Template.render` executes it like Go's ``Execute`` with
``Option("missingkey=zero")``: a missing map key is nil, printed as ``<no value>``. Data is dicts (keys looked up
by field name) and objects (attributes; callables are invoked as methods). Supported: text and ``{{ }}`` actions
with ``{{-``/``-}}`` trim markers, comments, fields and chains, ``$`` and variables (``:=``, ``=``), parenthesized
pipelines and ``|``, string/raw/char/number/bool/nil literals, ``if``/``else if``/``else``, ``with`` (``else
with``), ``range`` (lists, dicts in sorted key order, ints, ``else``, ``break``, ``continue``), the builtins
``and or not eq ne lt le gt ge len index slice print printf println`` and Ollama's ``json currentDate
yesterdayDate toTypeScriptType``. ``define``/``template``/``block`` are rejected.

Go values (literals, field access, range, fmt and encoding/json printing) and the builtin functions are in
`camelid.tokenizer.gofmt`; Ollama's way of executing a chat template, `render_ollama`, is in
`camelid.tokenizer.ollama_template` and is re-exported here lazily.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

from camelid.errors import BadRequest
from camelid.tokenizer.gofmt import _FUNCS, _field, _fmt_v, _FuncError, _literal, _range_items, _truth

__all__ = ["Template", "TemplateError", "parse", "render_ollama"]  # noqa: F822 (render_ollama: see __getattr__)


class TemplateError(BadRequest):
    """A Go template that does not parse or fails to execute; ``line``/``column`` locate it (1-based)."""

    def __init__(self, message: str, source: str = "", pos: int | None = None) -> None:
        self.line = self.column = 0
        if pos is not None:
            self.line = source.count("\n", 0, pos) + 1
            self.column = pos - source.rfind("\n", 0, pos)
            message = f"line {self.line}, column {self.column}: {message}"
        super().__init__(f"Go template error at {message}" if pos is not None else f"Go template error: {message}")


class _Jump(Exception):
    """{{break}} or {{continue}} (the message), caught by the enclosing range."""


_MISSING = object()  # "no piped value" for the last command argument

# ----------------------------------------------------------------------------------------------------- lexer


class _Tok(NamedTuple):
    kind: str
    val: Any
    pos: int


_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "nil", "define", "template", "block"}
_RE_SPACE = re.compile(r"[ \t\r\n]+")
_RE_TRIM_CLOSE = re.compile(r"[ \t\r\n]+-}}")
_RE_WORD = re.compile(r"\w*")


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src, self.toks = src, []

    def error(self, message: str, pos: int) -> TemplateError:
        return TemplateError(message, self.src, pos)

    def run(self) -> list[_Tok]:
        src, i = self.src, 0
        while (j := src.find("{{", i)) >= 0:
            trim_left = src.startswith("-", j + 2) and j + 3 < len(src) and src[j + 3] in _SPACE
            text = src[i:j].rstrip(_SPACE) if trim_left else src[i:j]
            if text:
                self.toks.append(_Tok("text", text, i))
            k = j + (4 if trim_left else 2)
            if src.startswith("/*", k):
                i = self.comment(j, k)
            else:
                self.toks.append(_Tok("open", None, j))
                i = self.action(j, k)
        if src[i:]:
            self.toks.append(_Tok("text", src[i:], i))
        self.toks.append(_Tok("eof", None, len(src)))
        return self.toks

    def comment(self, start: int, k: int) -> int:
        src, end = self.src, self.src.find("*/", k + 2)
        if end < 0:
            raise self.error("unclosed comment", start)
        k = end + 2
        if src.startswith("}}", k):
            return k + 2
        if k < len(src) and src[k] in _SPACE and src.startswith("-}}", k + 1):
            m = _RE_SPACE.match(src, k + 4)
            return m.end() if m else k + 4
        raise self.error("comment ends before closing delimiter", start)

    def action(self, start: int, k: int) -> int:
        src, toks, depth = self.src, self.toks, 0
        while True:
            trim = _RE_TRIM_CLOSE.match(src, k)
            if trim or src.startswith("}}", k):
                if depth:
                    raise self.error("unclosed left paren", k)
                toks.append(_Tok("close", None, k))
                if not trim:
                    return k + 2
                m = _RE_SPACE.match(src, trim.end())
                return m.end() if m else trim.end()
            if k >= len(src):
                raise self.error("unclosed action", start)
            c, k0 = src[k], k
            if c in _SPACE:
                kind, k = "space", _RE_SPACE.match(src, k).end()
            elif c in "|(),=":
                kind, k = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma", "=": "assign"}[c], k + 1
                depth += {"(": 1, ")": -1}.get(c, 0)
                if depth < 0:
                    raise self.error("unexpected right paren", k0)
            elif c == ":":
                if not src.startswith(":=", k):
                    raise self.error("expected :=", k)
                kind, k = "declare", k + 2
            elif c == "$" or (c == "." and not src[k + 1:k + 2].isdigit()):
                k = _RE_WORD.match(src, k + 1).end()
                kind = "var" if c == "$" else ("field" if k > k0 + 1 else "dot")
                self.terminator(k)
            elif c in "\"'`+-." or c.isdigit():
                try:
                    kind, value, k = _literal(src, k)
                except ValueError as e:
                    raise self.error(str(e), k0) from None
                toks.append(_Tok(kind, value, k0))
                continue
            elif c.isalnum() or c == "_":
                k = _RE_WORD.match(src, k).end()
                self.terminator(k)
                word = src[k0:k]
                kind = word if word in _KEYWORDS else ("bool" if word in ("true", "false") else "ident")
            else:
                raise self.error(f"unexpected {c!r} in action", k)
            toks.append(_Tok(kind, src[k0:k], k0))

    def terminator(self, k: int) -> None:
        if k < len(self.src) and self.src[k] not in _SPACE + ".,|:()}":
            raise self.error(f"bad character {self.src[k]!r}", k)


# ----------------------------------------------------------------------------------------------------- parse tree


# A template is a list of nodes: str (text), _Action, _Branch or _Loop. A command is a list of arguments: _Field
# (.A.B), _Var ($x.A), _Chain ((pipeline).A), _Func (a function name), _Lit (dot/nil/bool/number/string) or _Pipe.


class _Pipe(NamedTuple):
    pos: int
    decls: list[str]  # variables declared (or assigned, when assign) with the pipeline's value
    assign: bool
    cmds: list[list[Any]]


class _Field(NamedTuple):
    pos: int
    names: tuple[str, ...]


class _Var(NamedTuple):
    pos: int
    name: str
    names: tuple[str, ...]


class _Chain(NamedTuple):
    pos: int
    node: Any
    names: tuple[str, ...]


class _Func(NamedTuple):
    pos: int
    name: str


class _Lit(NamedTuple):
    pos: int
    kind: str
    value: Any


class _Action(NamedTuple):
    pos: int
    pipe: _Pipe


class _Branch(NamedTuple):
    pos: int
    kind: str  # if, with, range
    pipe: _Pipe
    body: list[Any]
    orelse: list[Any] | None


class _Loop(NamedTuple):
    pos: int
    kind: str  # break, continue


class _Parser:
    def __init__(self, src: str) -> None:
        self.src, self.toks, self.i = src, _Lexer(src).run(), 0
        self.vars, self.range_depth = ["$"], 0

    def error(self, message: str, pos: int) -> TemplateError:
        return TemplateError(message, self.src, pos)

    def next(self) -> _Tok:
        self.i += 1
        return self.toks[self.i - 1]

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next_nonspace(self) -> _Tok:
        while self.peek().kind == "space":
            self.i += 1
        return self.next()

    def peek_nonspace(self) -> _Tok:
        while self.peek().kind == "space":
            self.i += 1
        return self.peek()

    def unexpected(self, tok: _Tok, context: str) -> TemplateError:
        what = "{{" + tok.kind + "}}" if tok.kind in ("end", "else") else repr(tok.val or tok.kind)
        return self.error(f"unexpected {what} in {context}", tok.pos)

    def expect_close(self, context: str) -> None:
        if (tok := self.next_nonspace()).kind != "close":
            raise self.unexpected(tok, context)

    def parse(self) -> list[Any]:
        return self.item_list(None)[0]

    def item_list(self, opener: _Tok | None) -> tuple[list[Any], str]:
        """Nodes up to the {{end}} or {{else}} closing ``opener`` (None: the whole template)."""
        nodes: list[Any] = []
        top = opener is None
        while True:
            tok = self.next()
            if tok.kind == "eof":
                if top:
                    return nodes, "eof"
                raise self.error(f"unexpected EOF: no {{{{end}}}} for the {{{{{opener.kind}}}}} here", opener.pos)
            if tok.kind == "text":
                nodes.append(tok.val)
                continue
            if tok.kind != "open":
                raise self.unexpected(tok, "input")
            word = self.next_nonspace()
            if word.kind in ("end", "else"):
                if top:
                    raise self.error(f"unexpected {{{{{word.kind}}}}}", word.pos)
                if word.kind == "end" or self.peek_nonspace().kind not in ("if", "with"):
                    self.expect_close(word.kind)
                return nodes, word.kind
            nodes.append(self.action(word))

    def action(self, word: _Tok) -> Any:
        if word.kind in ("if", "with", "range"):
            return self.control(word)
        if word.kind in ("break", "continue"):
            if not self.range_depth:
                raise self.error(f"{{{{{word.kind}}}}} outside {{{{range}}}}", word.pos)
            self.expect_close(word.kind)
            return _Loop(word.pos, word.kind)
        if word.kind in ("define", "template", "block"):
            raise self.error(f"{{{{{word.kind}}}}} is not supported", word.pos)
        self.i -= 1
        return _Action(word.pos, self.pipeline("command", "close"))

    def control(self, word: _Tok) -> _Branch:
        mark, kind = len(self.vars), word.kind
        pipe = self.pipeline(kind, "close")
        self.range_depth += kind == "range"
        body, term = self.item_list(word)
        self.range_depth -= kind == "range"
        orelse = None
        if term == "else":
            if kind in ("if", "with") and self.peek_nonspace().kind == kind:
                orelse = [self.control(self.next_nonspace())]
            else:
                orelse, term = self.item_list(word)
                if term != "end":
                    raise self.error("expected {{end}}; found {{else}}", self.toks[self.i - 1].pos)
        del self.vars[mark:]
        return _Branch(word.pos, kind, pipe, body, orelse)

    def pipeline(self, context: str, end: str) -> _Pipe:
        pipe = _Pipe(self.peek_nonspace().pos, [], False, [])
        decls = pipe.decls
        if (var := self.peek_nonspace()).kind == "var":
            save = self.i
            self.next()
            op = self.peek_nonspace()
            if op.kind == "comma" and context == "range":
                self.next_nonspace()
                second = self.next_nonspace()
                op = self.peek_nonspace()
                if second.kind != "var" or op.kind not in ("declare", "assign"):
                    raise self.error("range can only initialize variables", second.pos)
                decls.append(var.val)
                var = second
            elif op.kind == "comma":
                raise self.error(f"too many declarations in {context}", op.pos)
            if op.kind in ("declare", "assign"):
                self.next_nonspace()
                decls.append(var.val)
                pipe = pipe._replace(assign=op.kind == "assign")
                self.vars.extend(decls)
            else:
                self.i = save
        while True:
            tok = self.next_nonspace()
            if tok.kind == end:
                break
            if tok.kind not in ("bool", "number", "dot", "field", "ident", "nil", "string", "var", "lparen"):
                raise self.unexpected(tok, context)
            self.i -= 1
            pipe.cmds.append(self.command())
        if not pipe.cmds:
            raise self.error(f"missing value for {context}", tok.pos)
        for n, cmd in enumerate(pipe.cmds[1:], 2):
            if isinstance(cmd[0], _Lit):
                raise self.error(f"non executable command in pipeline stage {n}", cmd[0].pos)
        return pipe

    def command(self) -> list[Any]:
        args = []
        while True:
            self.peek_nonspace()
            if (node := self.operand()) is not None:
                args.append(node)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("close", "rparen"):
                self.i -= 1
            elif tok.kind != "pipe":
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.error("empty command", tok.pos)
        return args

    def operand(self) -> Any:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        names = []
        while self.peek().kind == "field":
            names.append(self.next().val[1:])
        if isinstance(node, _Lit):
            raise self.error(f"unexpected . after term {node.value if node.kind != 'dot' else '.'!r}", node.pos)
        if isinstance(node, _Field):
            return _Field(node.pos, node.names + tuple(names))
        if isinstance(node, _Var):
            return _Var(node.pos, node.name, node.names + tuple(names))
        return _Chain(node.pos, node, tuple(names))

    def term(self) -> Any:
        tok = self.next_nonspace()
        kind, pos = tok.kind, tok.pos
        if kind == "ident":
            if tok.val not in _FUNCS:
                raise self.error(f'function "{tok.val}" not defined', pos)
            return _Func(pos, tok.val)
        if kind == "var":
            if tok.val not in self.vars:
                raise self.error(f'undefined variable "{tok.val}"', pos)
            return _Var(pos, tok.val, ())
        if kind == "field":
            return _Field(pos, (tok.val[1:],))
        if kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if kind in ("dot", "nil", "bool", "number", "string"):
            return _Lit(pos, kind, {"bool": tok.val == "true", "nil": None, "dot": None}.get(kind, tok.val))
        self.i -= 1
        return None


# ----------------------------------------------------------------------------------------------------- execution


class _Exec:
    def __init__(self, src: str, data: Any) -> None:
        self.src, self.out, self.vars = src, [], [["$", data]]

    def error(self, message: str, pos: int) -> TemplateError:
        return TemplateError(message, self.src, pos)

    def walk(self, dot: Any, nodes: list[Any]) -> None:
        for n in nodes:
            if isinstance(n, str):
                self.out.append(n)
            elif isinstance(n, _Action):
                value = self.pipe(dot, n.pipe)
                if not n.pipe.decls:
                    self.out.append("<no value>" if value is None else _fmt_v(value, top=False))
            elif isinstance(n, _Branch):
                mark = len(self.vars)
                try:
                    value = self.pipe(dot, n.pipe)
                    if n.kind == "range":
                        self.range(dot, n, value)
                    elif _truth(value):
                        self.walk(value if n.kind == "with" else dot, n.body)
                    elif n.orelse is not None:
                        self.walk(dot, n.orelse)
                finally:
                    del self.vars[mark:]
            else:
                raise _Jump(n.kind)

    def range(self, dot: Any, n: _Branch, value: Any) -> None:
        if (items := _range_items(value)) is None:
            raise self.error(f"range can't iterate over {_fmt_v(value)}", n.pos)
        mark, decls, ran = len(self.vars), n.pipe.decls, False
        for key, elem in items:
            ran = True
            if n.pipe.assign:
                self.set_var(decls[0], key if len(decls) > 1 else elem, n.pos)
                if len(decls) > 1:
                    self.set_var(decls[1], elem, n.pos)
            elif decls:
                self.vars[mark - 1][1] = elem
                if len(decls) > 1:
                    self.vars[mark - 2][1] = key
            try:
                self.walk(elem, n.body)
            except _Jump as jump:
                if jump.args[0] == "break":
                    break
            finally:
                del self.vars[mark:]
        if not ran and n.orelse is not None:
            self.walk(dot, n.orelse)

    def set_var(self, name: str, value: Any, pos: int) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        raise self.error(f"undefined variable: {name}", pos)

    def var(self, name: str, pos: int) -> Any:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        raise self.error(f"undefined variable: {name}", pos)

    def pipe(self, dot: Any, pipe: _Pipe) -> Any:
        value = _MISSING
        for args in pipe.cmds:
            value = self.command(dot, args, value)
        for name in pipe.decls:
            if pipe.assign:
                self.set_var(name, value, pipe.pos)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, args: list[Any], final: Any) -> Any:
        first = args[0]
        if isinstance(first, _Func):
            return self.call(dot, first, args[1:], final)
        if isinstance(first, (_Field, _Chain)) or (isinstance(first, _Var) and first.names):
            return self.fields(dot, first, args[1:], final)
        if len(args) > 1 or final is not _MISSING:
            raise self.error("can't give argument to non-function", first.pos)
        if isinstance(first, _Lit) and first.kind == "nil":
            raise self.error("nil is not a command", first.pos)
        return self.arg(dot, first)

    def arg(self, dot: Any, node: Any) -> Any:
        if isinstance(node, _Lit):
            return dot if node.kind == "dot" else node.value
        if isinstance(node, _Var) and not node.names:
            return self.var(node.name, node.pos)
        if isinstance(node, _Pipe):
            return self.pipe(dot, node)
        if isinstance(node, _Func):
            return self.call(dot, node, [], _MISSING)
        return self.fields(dot, node, [], _MISSING)

    def fields(self, dot: Any, node: Any, args: list[Any], final: Any) -> Any:
        if isinstance(node, _Field):
            receiver = dot
        elif isinstance(node, _Var):
            receiver = self.var(node.name, node.pos)
        else:
            if isinstance(node.node, _Lit) and node.node.kind == "nil":
                raise self.error("indirection through explicit nil", node.pos)
            receiver = self.arg(dot, node.node)
        for n, name in enumerate(node.names):
            has_args = n == len(node.names) - 1 and (bool(args) or final is not _MISSING)
            try:
                receiver = _field(receiver, name, has_args)
            except _FuncError as e:
                raise self.error(str(e), node.pos) from None
        return receiver

    def call(self, dot: Any, fn: _Func, args: list[Any], final: Any) -> Any:
        func, lo, hi = _FUNCS[fn.name]
        count = len(args) + (final is not _MISSING)
        if count < lo or (hi is not None and count > hi):
            want = f"at least {lo}" if hi is None else str(lo)
            raise self.error(f"wrong number of args for {fn.name}: want {want} got {count}", fn.pos)
        if func is None:  # and / or: stop at the first false / true argument
            value = None
            for a in args:
                value = self.arg(dot, a)
                if _truth(value) == (fn.name == "or"):
                    return value
            return final if final is not _MISSING else value
        values = [self.arg(dot, a) for a in args] + ([] if final is _MISSING else [final])
        try:
            return func(*values)
        except _FuncError as e:
            raise self.error(f"error calling {fn.name}: {e}", fn.pos) from None


# ----------------------------------------------------------------------------------------------------- public API


class Template:
    """A parsed Go template; `render` executes it. Obtain one with `parse`."""

    def __init__(self, source: str, root: list[Any]) -> None:
        self.source, self.root = source, root

    def render(self, data: Any) -> str:
        return _execute(self.source, self.root, data)

    def identifiers(self) -> list[str]:
        """Ollama's Template.Vars: lower-cased field and variable names the template mentions, sorted."""
        names: set[str] = set()

        def visit(n: Any) -> None:
            if isinstance(n, list):
                for c in n:
                    visit(c)
            elif isinstance(n, (_Action, _Branch)):
                visit(n.pipe)
                if isinstance(n, _Branch):
                    visit(n.body)
                    visit(n.orelse or [])
            elif isinstance(n, _Pipe):
                visit([a for args in n.cmds for a in args])
            elif isinstance(n, (_Field, _Var)):
                names.update(x.lower() for x in ((n.name,) if isinstance(n, _Var) else ()) + n.names)

        visit(self.root)
        return sorted(names)


def _execute(source: str, root: list[Any], data: Any) -> str:
    ex = _Exec(source, data)
    try:
        ex.walk(data, root)
    except RecursionError:
        raise TemplateError("template nests too deeply") from None
    return "".join(ex.out)


@lru_cache(maxsize=256)
def parse(source: str) -> Template:
    """Parse a Go template (cached by source); syntax errors raise `TemplateError` with line and column."""
    return Template(source, _Parser(source).parse())


def __getattr__(name: str) -> Any:
    """``render_ollama`` is imported on first use: camelid.tokenizer.ollama_template imports this module."""
    if name == "render_ollama":
        from camelid.tokenizer.ollama_template import render_ollama

        return render_ollama
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
