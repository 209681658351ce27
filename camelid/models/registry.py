"""Architectures by GGUF `general.architecture` name: `@register("llama")` on a model class."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from camelid.errors import UnsupportedModel

ModelClass = TypeVar("ModelClass", bound=type[nn.Module])

ARCHITECTURES: dict[str, type[nn.Module]] = {}


def register(*names: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: the model class built for GGUF files of these architecture names."""

    def decorate(model_class: ModelClass) -> ModelClass:
        for name in names:
            if name in ARCHITECTURES and ARCHITECTURES[name] is not model_class:
                raise ValueError(f"architecture '{name}' is registered twice")
            ARCHITECTURES[name] = model_class
        return model_class

    return decorate


def get_architecture(name: str) -> type[nn.Module]:
    """The model class for a GGUF architecture name, or UnsupportedModel naming the supported ones."""
    _import_all()
    try:
        return ARCHITECTURES[name]
    except KeyError:
        supported = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedModel(f"architecture '{name}' is not supported (supported: {supported})") from None


def supported_architectures() -> list[str]:
    _import_all()
    return sorted(ARCHITECTURES)


def _import_all() -> None:
    """Import every architecture module (each registers its classes)."""
    import importlib

    from camelid.models import ARCHITECTURE_MODULES

    for module in ARCHITECTURE_MODULES:
        importlib.import_module(f"camelid.models.{module}")
