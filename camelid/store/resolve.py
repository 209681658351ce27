"""From what a user typed (a name, an alias, a path, a URL) to the files of a model and its stored defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camelid import config
from camelid.errors import BadRequest, UnknownModel
from camelid.store import manifest as mt
from camelid.store.blobs import ModelStore
from camelid.store.build import read_parts
from camelid.store.catalog import lookup, names
from camelid.store.embedded import installed_files
from camelid.store.names import ModelName
from camelid.store.pull import Report, is_hf, is_url, name_for, pull


@dataclass
class ResolvedModel:
    name: str
    format: str  # "gguf" or "ct2"
    path: Path | None = None  # the GGUF file of an LLM
    files: dict[str, Path] = field(default_factory=dict)  # a folder model's files by name
    parameters: dict[str, Any] = field(default_factory=dict)  # request defaults (Modelfile PARAMETER)
    template: str | None = None
    system: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    manifest: mt.Manifest | None = None
    digest: str | None = None  # the manifest's sha256 (for stored models)


def from_store(store: ModelStore, name: ModelName) -> ResolvedModel | None:
    manifest = store.read(name)
    if manifest is None:
        return None
    manifest = store.get(name)  # raises when a blob is missing
    parts = read_parts(store, manifest)
    resolved = ResolvedModel(str(name), "gguf" if parts.model else "ct2", parameters=parts.parameters,
                             template=parts.template, system=parts.system, messages=parts.messages,
                             licenses=parts.licenses, manifest=manifest)
    if parts.model is not None:
        resolved.path = store.blob_path(parts.model.digest)
    resolved.files = {layer.title or layer.digest: store.blob_path(layer.digest) for layer in parts.files}
    import hashlib

    resolved.digest = hashlib.sha256(store.manifest_file(name).read_bytes()).hexdigest()
    return resolved


def resolve(reference: str | os.PathLike | None = None, store: ModelStore | None = None, *,
            pull_missing: bool = True, report: Report | None = None) -> ResolvedModel:
    """Path → the file or folder itself; name → the store, else an installed catalog package, else a pull (when
    `pull_missing`). Raises UnknownModel with what was tried."""
    text = str(reference) if reference not in (None, "") else config.CAMELID_DEFAULT_MODEL.get()
    path = Path(text).expanduser()
    if not is_url(text) and path.exists():
        if path.is_dir():
            return ResolvedModel(path.name, "ct2", files={p.name: p for p in path.iterdir() if p.is_file()})
        return ResolvedModel(path.name, "gguf", path=path)
    if text.endswith(".gguf") and not is_url(text):
        raise UnknownModel(f"model file {text} does not exist")
    store = store or ModelStore()
    try:
        name = name_for(text)
    except BadRequest:
        if os.sep in text or "/" in text:
            raise UnknownModel(f"model '{text}' is neither a file nor a valid model name") from None
        raise
    found = from_store(store, name)
    if found is None and (entry := lookup(text)) is not None:
        files = installed_files(entry)
        if files is not None:
            first = next(iter(files.values()))
            return ResolvedModel(str(entry.name), entry.format, path=first if entry.format == "gguf" else None,
                                 files={} if entry.format == "gguf" else files)
    if found is None:
        pullable = lookup(text) is not None or is_url(text) or is_hf(text)
        if pullable and not pull_missing:
            raise UnknownModel(f"model '{text}' is not in the store yet; run `camelid pull {text}`")
        if not pullable:
            raise UnknownModel(f"model '{text}' not found: not in the store ({store.root}) nor in the catalog "
                               f"({', '.join(names())}); `camelid list` shows what is stored")
        found = from_store(store, pull(text, store, report))
        if found is None:
            raise UnknownModel(f"model '{text}' was pulled but cannot be read back")
    return found


def resolve_model(reference: str | os.PathLike | None = None) -> Path:
    """The GGUF file of an LLM (see `resolve`)."""
    found = resolve(reference)
    if found.path is None:
        raise UnknownModel(f"model '{found.name}' is not a GGUF language model")
    return found.path
