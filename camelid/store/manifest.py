"""Manifests in Ollama's format (a Docker v2 image manifest): one config blob and a list of layers, each named by
its sha256 digest and typed by a media type. camelid writes the same JSON Ollama writes, so either program can
read the other's store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from camelid.errors import BadModelFile

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
_OLLAMA = "application/vnd.ollama.image."
MODEL = _OLLAMA + "model"
TEMPLATE = _OLLAMA + "template"
SYSTEM = _OLLAMA + "system"
PARAMS = _OLLAMA + "params"
MESSAGES = _OLLAMA + "messages"
LICENSE = _OLLAMA + "license"
ADAPTER = _OLLAMA + "adapter"
PROJECTOR = _OLLAMA + "projector"
# Not an Ollama type: one file of a model folder (a CTranslate2 Whisper model), its name in the annotation below.
FILE = "application/vnd.camelid.model.file"
TITLE = "org.opencontainers.image.title"  # the OCI annotation that names a file layer


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # "sha256:<64 hex>"
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Layer:
        try:
            layer = cls(str(data["mediaType"]), str(data["digest"]), int(data["size"]),
                        {str(k): str(v) for k, v in (data.get("annotations") or {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadModelFile(f"malformed manifest layer: {str(data)[:200]}") from None
        check_digest(layer.digest)
        return layer

    @property
    def title(self) -> str | None:
        return self.annotations.get(TITLE)


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]
    schema_version: int = 2

    def to_bytes(self) -> bytes:
        return json.dumps({"schemaVersion": self.schema_version, "mediaType": MANIFEST_MEDIA_TYPE,
                           "config": self.config.to_json(), "layers": [layer.to_json() for layer in self.layers]},
                          indent=None, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        try:
            data = json.loads(raw)
            return cls(Layer.from_json(data["config"]), tuple(Layer.from_json(x) for x in data["layers"]),
                       int(data.get("schemaVersion", 2)))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BadModelFile("malformed manifest (not the JSON of an image manifest)") from None

    @property
    def total_size(self) -> int:
        """What `ollama list` shows as SIZE: every layer and the config."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def find(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]

    def one(self, media_type: str) -> Layer | None:
        found = self.find(media_type)
        return found[-1] if found else None

    @property
    def digests(self) -> set[str]:
        return {self.config.digest, *(layer.digest for layer in self.layers)}


def check_digest(digest: str) -> str:
    """A digest as `sha256:<64 lower-case hex>` (also accepts Ollama's file spelling `sha256-...`); raises."""
    normal = digest.replace("sha256-", "sha256:", 1) if digest.startswith("sha256-") else digest
    hex_part = normal.removeprefix("sha256:")
    if not normal.startswith("sha256:") or len(hex_part) != 64 or any(c not in "0123456789abcdef" for c in hex_part):
        raise BadModelFile(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return normal


def config_blob(model_format: str, family: str, families: list[str], model_type: str, file_type: str,
                layer_digests: list[str]) -> bytes:
    """The image config blob Ollama writes beside the layers (what `/api/tags` reports as `details`)."""
    return json.dumps({"model_format": model_format, "model_family": family, "model_families": families,
                       "model_type": model_type, "file_type": file_type, "architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": layer_digests}}, separators=(",", ":")).encode()
