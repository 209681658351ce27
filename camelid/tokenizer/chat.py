"""Chat templates: the model's Jinja template rendered the way Hugging Face transformers renders it.

Environment as in transformers' ``_compile_jinja_template``: ``ImmutableSandboxedEnvironment`` with
``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension and a ``{% generation %}`` block (rendered
as-is), the globals ``raise_exception`` and ``strftime_now``, and a ``tojson`` filter with HF's signature
(``ensure_ascii=False`` by default, ``indent``, ``separators``, ``sort_keys``).

When a model ships no template (``template is None``), ChatML is used::

    <|im_start|>{role}\\n{content}<|im_end|>\\n   ... per message, then "<|im_start|>assistant\\n"

which is also what llama.cpp falls back to. Any template problem (syntax error, ``raise_exception``, a
sandbox violation, a bad message shape) becomes `camelid.errors.BadRequest` with a one-line message.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

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


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
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
