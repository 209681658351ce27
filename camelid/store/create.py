"""`camelid create NAME -f Modelfile`, `cp`, and `import --ollama`: models made from other models and files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from camelid.errors import BadRequest, CamelidError, UnknownModel
from camelid.store import manifest as mt
from camelid.store.blobs import ModelStore, name_lock
from camelid.store.build import Parts, build_manifest, read_parts
from camelid.store.manifest import Layer, Manifest
from camelid.store.names import ModelName

Status = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def create(name: str, modelfile_text: str, base_dir: Path | None = None, store: ModelStore | None = None,
           status: Status | None = None) -> ModelName:
    """Build a model from a Modelfile: FROM a GGUF path (relative to the Modelfile's folder) or a model name;
    its PARAMETER, TEMPLATE, SYSTEM, MESSAGE and LICENSE replace what the base model had."""
    from camelid.store.modelfile import parse

    store = store or ModelStore()
    status = status or _quiet
    target = ModelName.parse(name)
    status("parsing modelfile")
    modelfile = parse(modelfile_text)
    if modelfile.adapters:
        raise BadRequest("ADAPTER (LoRA adapters) is not supported yet")
    parameters = modelfile.parameter_values()  # validates names and values before any work
    parts = _base_parts(modelfile.from_, base_dir or Path.cwd(), store, status)
    if modelfile.template is not None:
        parts.template = modelfile.template
    if modelfile.system is not None:
        parts.system = modelfile.system
    if parameters:
        parts.parameters = {**parts.parameters, **parameters}
    if modelfile.messages:
        parts.messages = [{"role": role, "content": content} for role, content in modelfile.messages]
    if modelfile.licenses:
        parts.licenses = list(modelfile.licenses)
    with store.lock(name_lock(target)):
        manifest = build_manifest(store, parts)
        status("writing manifest")
        store.write(target, manifest)
    status("success")
    return target


def create_from_request(name: str, body: dict, store: ModelStore | None = None,
                        status: Status | None = None) -> ModelName:
    """Ollama's /api/create: `from` (a model name) or `files` ({file name: digest} of blobs already pushed),
    then `template`, `system`, `parameters`, `messages`, `license` on top."""
    store = store or ModelStore()
    return create(name, modelfile_for_request(body, store), store=store, status=status)


def modelfile_for_request(body: dict, store: ModelStore | None = None) -> str:
    """The Modelfile an /api/create request amounts to; its mistakes raise BadRequest/UnknownModel at once."""
    from camelid.store.modelfile import Modelfile, render, render_parameters

    store = store or ModelStore()
    if body.get("quantize"):
        raise BadRequest("quantize is not supported yet")
    source = body.get("from")
    files = body.get("files") or {}
    if files:
        if not isinstance(files, dict):
            raise BadRequest("files must map file names to sha256 digests")
        gguf = [digest for file, digest in files.items() if str(file).endswith(".gguf")]
        if len(gguf) != 1:
            raise BadRequest("files must name exactly one .gguf file")
        if not store.has_blob(gguf[0]):
            raise UnknownModel(f"blob {gguf[0]} not found; push it to /api/blobs first")
        source = str(store.blob_path(gguf[0]))
    elif isinstance(source, str) and (Path(source).expanduser().is_absolute() or source.startswith(".")
                                      or source.endswith(".gguf") or "\\" in source):
        raise BadRequest("from must name a model; send a GGUF file with POST /api/blobs/<digest> and files")
    if not isinstance(source, str) or not source:
        raise BadRequest("either from or files is required")
    license_value = body.get("license")
    licenses = [license_value] if isinstance(license_value, str) else list(license_value or [])
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest("parameters must be an object")
    messages = body.get("messages") or []
    modelfile = Modelfile(from_=source, parameters=render_parameters(parameters), template=body.get("template"),
                          system=body.get("system"), licenses=licenses,
                          messages=[(str(m.get("role", "")), str(m.get("content", ""))) for m in messages])
    text = render(modelfile)
    from camelid.store.modelfile import parse

    parse(text).parameter_values()  # names and values checked now, before a streamed answer starts
    return text


def _base_parts(source: str, base_dir: Path, store: ModelStore, status: Status) -> Parts:
    path = (base_dir / Path(source).expanduser()) if not Path(source).expanduser().is_absolute() \
        else Path(source).expanduser()
    if path.is_file():
        from camelid.gguf.reader import GGUFFile

        GGUFFile(path)  # a readable GGUF, checked before anything is stored (raises BadModelFile)
        status(f"copying file {path.name}")
        digest, size = store.add_file(path)
        status(f"using layer {digest}")
        return Parts(model=Layer(mt.MODEL, digest, size))
    if path.is_dir():
        raise BadRequest(f"FROM {source}: creating a model from a folder (safetensors) is not supported yet; "
                         "convert it to GGUF first")
    if source.endswith(".gguf") or os.sep in source and not source.startswith(("hf.co/", "huggingface.co/")):
        raise UnknownModel(f"FROM {source}: no such file")
    from camelid.store.resolve import resolve

    base = resolve(source, store)
    if base.manifest is not None:
        return read_parts(store, base.manifest)
    if base.path is None:  # an installed catalog folder model: store its files
        files = [Layer(mt.FILE, *store.add_file(p), {mt.TITLE: n}) for n, p in base.files.items()]
        return Parts(files=files)
    status(f"copying file {base.path.name}")
    digest, size = store.add_file(base.path)
    return Parts(model=Layer(mt.MODEL, digest, size))


def copy(source: str, destination: str, store: ModelStore | None = None) -> ModelName:
    store = store or ModelStore()
    src, dst = ModelName.parse(source), ModelName.parse(destination)
    with store.lock(name_lock(dst)):
        store.copy(src, dst)
    return dst


def import_ollama(folder: Path, store: ModelStore | None = None, status: Status | None = None) -> list[ModelName]:
    """Bring every model of an Ollama store into this one, keeping digests: blobs are hard-linked when both
    stores share a file system (copied otherwise) after their sha256 is checked."""
    store = store or ModelStore()
    status = status or _quiet
    folder = folder.expanduser()
    if not (folder / "manifests").is_dir():
        raise UnknownModel(f"{folder} is not an Ollama model store (no manifests folder)")
    same = folder.resolve() == store.root.resolve()
    imported = []
    for path in sorted((folder / "manifests").glob("*/*/*/*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        host, namespace, model, tag = path.relative_to(folder / "manifests").parts
        try:
            name = ModelName.parse(f"{host}/{namespace}/{model}:{tag}")
            raw = path.read_bytes()
            manifest = Manifest.from_bytes(raw)
        except (CamelidError, OSError) as err:  # a bad name or malformed manifest: skip it, import the rest
            status(f"skipping {path}: {err}")
            continue
        if not same:
            for digest in sorted(manifest.digests):
                blob = folder / "blobs" / digest.replace(":", "-")
                if not blob.is_file():
                    raise UnknownModel(f"{name}: blob {digest} is missing from {folder}")
                status(f"importing {digest[7:19]} for {name}")
                store.add_file(blob, expected=digest, link=True)
            with store.lock(name_lock(name)):
                store.write(name, manifest, raw=raw)
        imported.append(name)
        status(f"imported {name}")
    return imported
