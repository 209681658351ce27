"""Chat templates: the model's Jinja template rendered the way Hugging Face transformers renders it.

Environment as in transformers' ``_compile_jinja_template``: ``ImmutableSandboxedEnvironment`` with
``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension and a ``{% generation %}`` block (rendered
as-is), the globals ``raise_exception`` and ``strftime_now``, and a ``tojson`` filter with HF's signature
(``ensure_ascii=False`` by default, ``indent``, ``separators``, ``sort_keys``).

When a model ships no template (``template is None``), ChatML is used::

    <|im_start|>{role}\\n{content}<|im_end|>\\n   ... per message, then "<|im_start|>assistant\\n"

which is also what llama.cpp falls back to. Any template problem (syntax error, ``raise_exception``, a
sandbox violation, a bad message shape) becomes `camelid.errors.BadRequest` with a one-line message. The work of a
rendering is bounded (a template comes with the model file): a million ``range`` items in all, and no `*`, `%`,
`**` or filter size argument that would build a value of more than 16 million items.
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.runtime
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from camelid.errors import BadRequest

CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- elif message['content'] is iterable and message['content'] is not mapping -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


# Architectures whose GGUFs often ship without a chat template get their family's format, as Ollama's library does
# (llama.cpp would fall back to ChatML, which these models were not trained on).
GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set prefix = messages[0]['content'] + '\n\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + message['content'] | trim "
    "+ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
DEFAULT_TEMPLATES = {"gemma3": GEMMA_TEMPLATE, "gemma2": GEMMA_TEMPLATE, "gemma": GEMMA_TEMPLATE}


def default_template(architecture: str) -> str | None:
    """The chat template to use when a GGUF has none (None: ChatML)."""
    return DEFAULT_TEMPLATES.get(architecture)


class TemplateRaised(jinja2.exceptions.TemplateError):
    """`raise_exception(...)` called by the template itself."""


def _raise_exception(message: str) -> None:
    raise TemplateRaised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (HF's assistant-mask marker): renders its body unchanged."""

    tags: ClassVar[set[str]] = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


# A template comes with the model file (or a request): its work is bounded, so that a hostile one cannot stall a
# server or fill its memory. Far above what chat templates do (they loop over the messages).
MAX_LOOP_ITEMS = 1_000_000  # range() items per rendering (the sandbox alone caps one range() at 100 000)
MAX_VALUE_SIZE = 16_000_000  # characters or items of a value built by *, % or a filter's size argument
_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("chat_template_budget")


def _limited_range(*args: int) -> range:
    items = safe_range(*args)  # the sandbox's own cap per call, then the rendering's budget
    budget = _budget.get(None)
    if budget is not None:
        budget[0] -= len(items)
        if budget[0] < 0:
            raise SecurityError(f"it loops more than {MAX_LOOP_ITEMS} times")
    return items


def _check_size(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE_SIZE:
        raise SecurityError(f"{what} of {value}")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with `*`, `%` and `**` checked before they build a value larger than MAX_VALUE_SIZE."""

    intercepted_binops = frozenset(["*", "%", "**"])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_VALUE_SIZE:
                    raise SecurityError(f"a value of {len(seq) * count} items")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
            if right * abs(left).bit_length() > MAX_VALUE_SIZE:
                raise SecurityError(f"a power of about {right * abs(left).bit_length()} bits")
        elif operator == "%" and isinstance(left, str):
            for width in re.findall(r"%[-+ #0]*(\d+)(?:\.(\d+))?", left):
                _check_size(max(int(w) for w in width if w), "a format width")
        return super().call_binop(context, operator, left, right)


def _bounded_filter(function: Any) -> Any:
    """A filter whose numeric arguments (a width, a length) stay under MAX_VALUE_SIZE."""
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[1:], *kwargs.values()):
            _check_size(value, "a filter argument")
        return function(*args, **kwargs)

    return bounded


def _environment() -> ImmutableSandboxedEnvironment:
    env = _BoundedEnvironment(trim_blocks=True, lstrip_blocks=True,
                              extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    env.filters = {name: _bounded_filter(f) for name, f in env.filters.items()}
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["range"] = _limited_range
    return env


_ENV = _environment()


@lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    return _ENV.from_string(template)


def render_chat(template: str | None, messages: list[dict], *, add_generation_prompt: bool = True,
                bos_token: str = "", eos_token: str = "", tools: list | None = None, **extra: Any) -> str:
    """Render `messages` with a chat template (None -> ChatML). Errors raise `BadRequest`."""
    source = CHATML_TEMPLATE if template is None else template
    try:
        compiled = _compile(source)
    except jinja2.TemplateSyntaxError as err:
        raise BadRequest(f"chat template has a syntax error (line {err.lineno}): {err.message}") from None
    except jinja2.TemplateError as err:
        raise BadRequest(f"chat template cannot be compiled: {err}") from None
    context: dict[str, Any] = {
        "messages": messages, "tools": tools, "add_generation_prompt": add_generation_prompt,
        "bos_token": bos_token, "eos_token": eos_token,
    }
    context.update(extra)
    token = _budget.set([MAX_LOOP_ITEMS])
    try:
        return compiled.render(**context)
    except TemplateRaised as err:
        raise BadRequest(f"chat template refused the conversation: {err}") from None
    except jinja2.exceptions.SecurityError as err:
        raise BadRequest(f"chat template tried an unsafe operation: {err}") from None
    except jinja2.TemplateError as err:
        raise BadRequest(f"chat template failed: {err}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError, OverflowError,
            RecursionError) as err:
        raise BadRequest(f"chat template failed on these messages: {type(err).__name__}: {err}") from None
    finally:
        _budget.reset(token)
