"""Where models live on disk: names, blobs and manifests in Ollama's layout, the PyPI catalog, pulls, imports.
Independent of torch so that LLM and speech models share it."""

from camelid.store.blobs import ModelStore, StoreError
from camelid.store.names import ModelName
from camelid.store.resolve import ResolvedModel, resolve, resolve_model

__all__ = ["ModelName", "ModelStore", "ResolvedModel", "StoreError", "resolve", "resolve_model"]
