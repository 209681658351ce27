"""Model names as Ollama spells them: `[host/][namespace/]model[:tag]`, with Ollama's defaults and rules.

A name maps to exactly one manifest path, `manifests/<host>/<namespace>/<model>/<tag>`, so validation is also the
store's guard against path traversal: every part is a plain file name made of letters, digits, `_`, `-` and `.`
(the host may also hold one `:port`), and no part is `.`, `..` or empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from camelid.errors import BadRequest

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,79}")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,349}(:[0-9]{1,5})?")


class InvalidName(BadRequest):
    """A model name that breaks Ollama's naming rules."""


@dataclass(frozen=True, order=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse and validate; missing parts take Ollama's defaults. Raises InvalidName with the reason."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidName("a model name is required")
        raw = text.strip()
        if raw.startswith(("/", "\\", "~")) or "\\" in raw or "\x00" in raw or ".." in raw:
            raise InvalidName(f"invalid model name {raw!r}: expected [host/][namespace/]model[:tag]")
        path, tag = raw, DEFAULT_TAG
        slash, colon = raw.rfind("/"), raw.rfind(":")
        if colon > slash:
            path, tag = raw[:colon], raw[colon + 1:]
        parts = path.split("/")
        if len(parts) > 3:
            raise InvalidName(f"invalid model name {raw!r}: at most host/namespace/model before the tag")
        host = parts[0] if len(parts) == 3 else DEFAULT_HOST
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        model = parts[-1]
        for kind, value, pattern in (("host", host, _HOST), ("namespace", namespace, _PART),
                                     ("model", model, _PART), ("tag", tag, _PART)):
            if not pattern.fullmatch(value) or value.strip(".") == "":
                raise InvalidName(f"invalid model name {raw!r}: bad {kind} {value!r} (letters, digits, '_', '-', "
                                  "'.'; at most 80 characters; starting with a letter, digit or '_')")
        return cls(host, namespace, model, tag)

    @property
    def manifest_path(self) -> PurePosixPath:
        """Where its manifest lives under `manifests/`."""
        return PurePosixPath(self.host, self.namespace, self.model, self.tag)

    def __str__(self) -> str:
        """The shortest spelling, as `ollama list` prints names: default host and namespace left out."""
        if self.host != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"


def is_model_name(text: str) -> bool:
    """Whether `text` is a valid name (never raises)."""
    try:
        ModelName.parse(text)
    except BadRequest:
        return False
    return True
