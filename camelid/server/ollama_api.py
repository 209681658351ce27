"""Ollama's native API: the routes, NDJSON streaming, and the model library endpoints."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from camelid import __version__, config
from camelid.errors import BadRequest, CamelidError, RequestTooLarge, UnknownModel
from camelid.server import handlers
from camelid.server.errors import error_status

router = APIRouter()
NDJSON = "application/x-ndjson"


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object, read up to CAMELID_MAX_REQUEST_MB (a larger body is refused before it is read)."""
    limit = config.int_setting(config.CAMELID_MAX_REQUEST_MB, 1) << 20
    declared = request.headers.get("content-length", "")
    too_large = RequestTooLarge(f"the request body is larger than {limit >> 20} MB (CAMELID_MAX_REQUEST_MB)")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("invalid JSON in the request body") from None
    except RecursionError:
        raise BadRequest("the JSON of the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


async def respond(chunks: AsyncIterator[dict[str, Any]], stream: bool) -> Response:
    """Stream chunks as NDJSON, or merge them into one object (`"stream": false`). Errors before the first chunk
    become an HTTP error; errors after it become a final {"error"} line, as Ollama does."""
    iterator = chunks.__aiter__()
    first = await iterator.__anext__()  # raises the request's errors here, before any byte is sent
    if not stream:
        merged = first
        async for chunk in iterator:
            merged = merge(merged, chunk)
        if "error" in merged:
            return JSONResponse({"error": merged["error"]}, status_code=500)
        return JSONResponse(merged)

    async def lines() -> AsyncIterator[bytes]:
        try:
            yield (json.dumps(first) + "\n").encode()
            async for chunk in iterator:
                yield (json.dumps(chunk) + "\n").encode()
        except CamelidError as err:
            yield (json.dumps({"error": str(err)}) + "\n").encode()
        finally:
            await iterator.aclose()

    return StreamingResponse(lines(), media_type=NDJSON)


def merge(total: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """Concatenate streamed text and keep the final chunk's fields."""
    out = {**total, **{k: v for k, v in chunk.items() if k not in ("response", "message", "logprobs")}}
    if "response" in chunk:
        out["response"] = total.get("response", "") + chunk["response"]
    if "message" in chunk:
        message = dict(total.get("message") or {"role": "assistant", "content": ""})
        message["content"] = message.get("content", "") + (chunk["message"].get("content") or "")
        for key in ("tool_calls",):
            if key in chunk["message"]:
                message[key] = chunk["message"][key]
        out["message"] = message
    if "logprobs" in chunk:
        out["logprobs"] = list(total.get("logprobs") or []) + chunk["logprobs"]
    return out


@router.api_route("/api/version", methods=["GET"])
async def version() -> dict[str, str]:
    return {"version": __version__}


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    body = await read_json(request)
    return await respond(handlers.generate(request.app.state.scheduler, body), body.get("stream", True) is not False)


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    body = await read_json(request)
    return await respond(handlers.chat(request.app.state.scheduler, body), body.get("stream", True) is not False)


@router.post("/api/embed")
async def embed(request: Request) -> dict[str, Any]:
    return await handlers.embed(request.app.state.scheduler, await read_json(request))


@router.post("/api/embeddings")
async def embeddings(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    result = await handlers.embed(request.app.state.scheduler, body, field="prompt")
    return {"embedding": result["embeddings"][0]}


# --- the model library --------------------------------------------------------------------------------------

def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def details_of(config_bytes: bytes | None, fallback: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        config = json.loads(config_bytes) if config_bytes else {}
    except ValueError:
        config = {}
    details = {"parent_model": "", "format": config.get("model_format", "gguf"),
               "family": config.get("model_family", ""), "families": config.get("model_families") or None,
               "parameter_size": config.get("model_type", ""), "quantization_level": config.get("file_type", "")}
    return {**details, **(fallback or {})}


def list_models() -> list[dict[str, Any]]:
    """Stored models, then catalog models installed as packages (usable without a pull)."""
    from camelid.store.blobs import ModelStore
    from camelid.store.catalog import catalog
    from camelid.store.embedded import is_installed

    store = ModelStore()
    models, seen = [], set()
    for entry in store.entries():
        config = store.blob_path(entry.manifest.config.digest).read_bytes()
        name = str(entry.name)
        seen.add(name)
        models.append({"name": name, "model": name, "modified_at": iso(entry.modified),
                       "size": entry.manifest.total_size, "digest": entry.manifest_digest,
                       "details": details_of(config)})
    for catalog_entry in {id(e): e for e in catalog().values()}.values():
        name = str(catalog_entry.name)
        if name in seen or not is_installed(catalog_entry):
            continue
        models.append({"name": name, "model": name, "modified_at": iso(time.time()), "size": catalog_entry.size,
                       "digest": catalog_entry.files[0].sha256, "details": installed_details(catalog_entry)})
    return models


_DETAILS: dict[str, dict[str, Any]] = {}


def installed_details(entry: Any) -> dict[str, Any]:
    """details of an installed catalog model, read once from its GGUF header (no copy, no torch)."""
    key = str(entry.name)
    if key not in _DETAILS:
        fallback: dict[str, Any] = {"format": entry.format}
        if entry.format == "gguf":
            from camelid.store.embedded import installed_files

            try:
                from camelid.gguf.info import describe
                from camelid.gguf.reader import GGUFFile

                path = next(iter((installed_files(entry) or {}).values()))
                info = describe(GGUFFile(path))
                fallback.update(family=info["architecture"], families=[info["architecture"]],
                                parameter_size=info["parameters"], quantization_level=info["quantization"])
            except (CamelidError, OSError, StopIteration):
                pass
        _DETAILS[key] = details_of(None, fallback)
    return _DETAILS[key]


@router.get("/api/tags")
async def tags() -> dict[str, Any]:
    return {"models": await asyncio.to_thread(list_models)}


@router.post("/api/show")
async def show(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    name = handlers.model_name(body)

    def work() -> dict[str, Any]:
        from camelid.store.resolve import resolve
        from camelid.store.show import show as show_model

        try:
            resolved = resolve(name, pull_missing=False)
        except UnknownModel:
            raise UnknownModel(f"model '{name}' not found") from None
        facts = show_model(resolved)
        reply = {k: facts[k] for k in ("license", "modelfile", "parameters", "template", "system", "details",
                                       "model_info", "capabilities")}
        if facts["messages"]:
            reply["messages"] = facts["messages"]
        reply["modified_at"] = iso(resolved.path.stat().st_mtime if resolved.path else time.time())
        return reply

    return await asyncio.to_thread(work)


async def stream_statuses(work: Any, stream: bool) -> Response:
    """Run a blocking library job that reports dict events; stream them as NDJSON or answer the last."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def report(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    task = asyncio.create_task(asyncio.to_thread(work, report))
    if not stream:
        await task
        return JSONResponse({"status": "success"})

    async def lines() -> AsyncIterator[bytes]:
        while not (task.done() and queue.empty()):
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield (json.dumps(getter.result()) + "\n").encode()
            else:
                getter.cancel()
        error = task.exception()
        if error is not None:
            yield (json.dumps({"error": str(error)}) + "\n").encode()

    return StreamingResponse(lines(), media_type=NDJSON)


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    body = await read_json(request)
    name = handlers.model_name(body)
    from camelid.store.names import ModelName

    ModelName.parse(name) if not name.startswith(("http://", "https://")) else None  # bad names: 400 at once

    def work(report: Any) -> None:
        from camelid.store.pull import pull as pull_model

        pull_model(name, report=lambda event: report(event.as_dict()))

    return await stream_statuses(work, body.get("stream", True) is not False)


@router.post("/api/create")
async def create(request: Request) -> Response:
    body = await read_json(request)
    name = handlers.model_name(body)
    from camelid.store.create import create as create_model
    from camelid.store.create import modelfile_for_request
    from camelid.store.names import ModelName

    ModelName.parse(name)
    modelfile = await asyncio.to_thread(modelfile_for_request, body)  # bad requests: 400/404 before streaming

    def work(report: Any) -> None:
        create_model(name, modelfile, status=lambda s: report({"status": s}))

    return await stream_statuses(work, body.get("stream", True) is not False)


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    body = await read_json(request)
    source, destination = body.get("source"), body.get("destination")
    if not isinstance(source, str) or not isinstance(destination, str):
        raise BadRequest("source and destination are required")
    from camelid.store.create import copy as copy_model

    try:
        await asyncio.to_thread(copy_model, source, destination)
    except UnknownModel:
        raise UnknownModel(f"model '{source}' not found") from None
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    body = await read_json(request)
    name = handlers.model_name(body)
    from camelid.store.blobs import ModelStore
    from camelid.store.names import ModelName

    await request.app.state.scheduler.unload(name)
    await asyncio.to_thread(ModelStore().remove, ModelName.parse(name))
    return Response(status_code=200)


@router.get("/api/ps")
async def ps(request: Request) -> dict[str, Any]:
    scheduler = request.app.state.scheduler
    models = []
    for runner in scheduler.runners.values():
        llm = runner.llm
        size = llm.path.stat().st_size + runner.engine._cache().n_bytes
        info = llm.info()
        expires = runner.expires_at if math.isfinite(runner.expires_at) else time.time() + 10 * 365 * 86400
        models.append({"name": runner.name, "model": runner.name, "size": size, "digest": "",
                       "details": {"parent_model": "", "format": "gguf", "family": info["architecture"],
                                   "families": [info["architecture"]], "parameter_size": info["parameters"],
                                   "quantization_level": info["quantization"]},
                       "expires_at": iso(expires), "size_vram": 0, "context_length": llm.n_ctx})
    return {"models": models}


@router.head("/api/blobs/{digest}")
async def has_blob(digest: str) -> Response:
    from camelid.store.blobs import ModelStore

    return Response(status_code=200 if ModelStore().has_blob(digest) else 404)


@router.post("/api/blobs/{digest}")
async def push_blob(digest: str, request: Request) -> Response:
    from camelid.store.blobs import ModelStore
    from camelid.store.manifest import check_digest

    check_digest(digest)
    store = ModelStore()
    if store.has_blob(digest):
        return Response(status_code=200)
    import tempfile

    with tempfile.SpooledTemporaryFile(max_size=1 << 24) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)
        try:
            await asyncio.to_thread(store.add_stream, spool, digest, "the uploaded blob")
        except CamelidError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
    return Response(status_code=201)


__all__ = ["error_status", "router"]
