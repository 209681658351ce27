"""Turn a model's parts (blobs already in the store, plus parameters, template, system, messages, licenses) into
a manifest with Ollama's layers and config blob."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from camelid.store import manifest as mt
from camelid.store.blobs import ModelStore
from camelid.store.manifest import Layer, Manifest


@dataclass
class Parts:
    """What a model is made of, before it becomes layers."""

    model: Layer | None = None  # the GGUF layer (LLMs)
    files: list[Layer] = field(default_factory=list)  # named file layers (a CTranslate2 folder)
    parameters: dict[str, Any] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    adapters: list[Layer] = field(default_factory=list)


def model_details(store: ModelStore, parts: Parts) -> dict[str, Any]:
    """family, families, parameter size and quantization, read from the GGUF header (no torch)."""
    if parts.model is None:
        return {"model_format": "ctranslate2", "family": "whisper", "families": ["whisper"], "model_type": "",
                "file_type": ""}
    from camelid.gguf.info import describe
    from camelid.gguf.reader import GGUFFile

    info = describe(GGUFFile(store.blob_path(parts.model.digest)))
    family = str(info["architecture"])
    return {"model_format": "gguf", "family": family, "families": [family], "model_type": info["parameters"],
            "file_type": info["quantization"]}


def build_manifest(store: ModelStore, parts: Parts) -> Manifest:
    """Store the small text/JSON layers and the config blob; return the manifest (not yet written)."""
    layers: list[Layer] = []
    if parts.model is not None:
        layers.append(parts.model)
    layers += parts.files + parts.adapters

    def text_layer(media_type: str, text: str) -> None:
        digest, size = store.add_bytes(text.encode())
        layers.append(Layer(media_type, digest, size))

    if parts.template is not None:
        text_layer(mt.TEMPLATE, parts.template)
    if parts.system is not None:
        text_layer(mt.SYSTEM, parts.system)
    if parts.parameters:
        text_layer(mt.PARAMS, json.dumps(parts.parameters, separators=(",", ":")))
    if parts.messages:
        text_layer(mt.MESSAGES, json.dumps(parts.messages, separators=(",", ":")))
    for text in parts.licenses:
        text_layer(mt.LICENSE, text)
    details = model_details(store, parts)
    config = mt.config_blob(details["model_format"], details["family"], details["families"], details["model_type"],
                            details["file_type"], [layer.digest for layer in layers])
    digest, size = store.add_bytes(config)
    return Manifest(Layer(mt.CONFIG_MEDIA_TYPE, digest, size), tuple(layers))


def read_parts(store: ModelStore, manifest: Manifest) -> Parts:
    """The inverse of build_manifest: a stored model's parts (what `show` prints and `create ... FROM` inherits)."""
    def text(layer: Layer) -> str:
        return store.blob_path(layer.digest).read_text(encoding="utf-8", errors="replace")

    parts = Parts(model=manifest.one(mt.MODEL), files=manifest.find(mt.FILE), adapters=manifest.find(mt.ADAPTER))
    for layer in manifest.layers:
        if layer.media_type == mt.TEMPLATE:
            parts.template = text(layer)
        elif layer.media_type == mt.SYSTEM:
            parts.system = text(layer)
        elif layer.media_type == mt.PARAMS:
            parts.parameters = _json_object(text(layer))
        elif layer.media_type == mt.MESSAGES:
            loaded = _json_list(text(layer))
            parts.messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                              for m in loaded if isinstance(m, dict)]
        elif layer.media_type == mt.LICENSE:
            parts.licenses.append(text(layer))
    return parts


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_list(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []
