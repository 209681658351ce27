"""Model architectures (one file each, registered by GGUF architecture name) and their shared layers.

The names below load on first use, so that `camelid.models.config` and `camelid.models.native_model` stay
importable without torch (the quick path of a cold `camelid run`).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"DecoderModel": "base", "ModelConfig": "config", "get_architecture": "registry", "register": "registry",
          "supported_architectures": "registry"}
ARCHITECTURE_MODULES = ("gemma3", "llama", "phi3", "qwen")  # importing one registers its architectures

__all__ = ["DecoderModel", "ModelConfig", "get_architecture", "register", "supported_architectures"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'camelid.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"camelid.models.{_HOMES[name]}"), name)
