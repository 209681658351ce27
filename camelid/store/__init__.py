"""Where models live on disk. Independent of torch so that LLM and speech models share it."""

from camelid.store.embedded import resolve_model

__all__ = ["resolve_model"]
