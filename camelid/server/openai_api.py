"""The OpenAI API as translators onto the native handlers: requests become Ollama requests, Ollama chunks become
OpenAI objects (SSE when streaming, ending with `data: [DONE]`). No generation logic lives here."""

from __future__ import annotations

import base64
import json
import secrets
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from camelid.errors import BadRequest, CamelidError, UnknownModel
from camelid.server import handlers
from camelid.server.ollama_api import list_models, read_json

router = APIRouter(prefix="/v1")


def text_of(content: Any) -> str:
    """OpenAI message content: a string or a list of parts; text parts are joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "input_audio"):
                raise BadRequest(f"content parts of type {part['type']} are not supported by this model")
        return "".join(parts)
    raise BadRequest("message content must be a string or a list of parts")


def native_options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for openai_name, name in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
                              ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty")):
        if body.get(openai_name) is not None:
            options[name] = body[openai_name]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        options["num_predict"] = limit
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return options


def native_format(response_format: Any) -> Any:
    if not response_format:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be a JSON schema object")
        return schema
    raise BadRequest("response_format.type must be text, json_object or json_schema")


def native_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    out = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object")
        role = "system" if message.get("role") == "developer" else message.get("role")
        native: dict[str, Any] = {"role": role, "content": text_of(message.get("content"))}
        if message.get("tool_calls"):
            native["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                                  "arguments": _arguments(c["function"].get("arguments"))}}
                                    for c in message["tool_calls"]]
        if role == "tool" and message.get("name"):
            native["tool_name"] = message["name"]
        out.append(native)
    return out


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except (ValueError, RecursionError):
            raise BadRequest("tool call arguments must be a JSON object string") from None
    return value if isinstance(value, dict) else {}


def logprobs_of(chunk: dict[str, Any]) -> dict[str, Any] | None:
    entries = chunk.get("logprobs")
    if entries is None:
        return None
    return {"content": [{"token": e["token"], "logprob": e["logprob"], "bytes": list(e["token"].encode()),
                         "top_logprobs": [{"token": t["token"], "logprob": t["logprob"],
                                           "bytes": list(t["token"].encode())} for t in e.get("top_logprobs", [])]}
                        for e in entries]}


def usage(final: dict[str, Any]) -> dict[str, int]:
    prompt, completion = final.get("prompt_eval_count", 0), final.get("eval_count", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(final: dict[str, Any]) -> str:
    if final.get("message", {}).get("tool_calls"):
        return "tool_calls"
    return "length" if final.get("done_reason") == "length" else "stop"


def openai_tool_calls(native_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"index": i, "id": "call_" + secrets.token_hex(12), "type": "function",
             "function": {"name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"])}}
            for i, c in enumerate(native_calls)]


def sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n".encode()
        except CamelidError as err:
            yield f"data: {json.dumps(error_body(err))}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def error_body(err: Exception, status: int = 400) -> dict[str, Any]:
    kind = "not_found_error" if isinstance(err, UnknownModel) else "invalid_request_error"
    return {"error": {"message": str(err), "type": kind if status < 500 else "api_error", "param": None,
                      "code": None}}


async def first_and_rest(chunks: AsyncIterator[dict[str, Any]]) -> tuple[dict[str, Any], AsyncIterator[dict]]:
    """Pull the first native chunk now, so request errors become HTTP errors before streaming starts."""
    iterator = chunks.__aiter__()
    first = await iterator.__anext__()
    if "error" in first:
        raise CamelidError(first["error"])

    async def rest() -> AsyncIterator[dict[str, Any]]:
        yield first
        async for chunk in iterator:
            if "error" in chunk:
                raise CamelidError(chunk["error"])
            yield chunk

    return first, rest()


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    body = await read_json(request)
    native = {"model": handlers.model_name(body), "messages": native_messages(body.get("messages")),
              "options": native_options(body), "format": native_format(body.get("response_format")),
              "tools": (body.get("tools") or None) if body.get("tool_choice") != "none" else None, "stream": True,
              "tool_choice": None if body.get("tool_choice") in (None, "auto") else body.get("tool_choice"),
              "logprobs": bool(body.get("logprobs")), "top_logprobs": body.get("top_logprobs") or 0}
    if body.get("n", 1) not in (None, 1):
        raise BadRequest("only n = 1 is supported")
    ident, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    _, chunks = await first_and_rest(handlers.chat(request.app.state.scheduler, native))
    base = {"id": ident, "created": created, "model": native["model"], "system_fingerprint": "camelid"}
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def stream() -> AsyncIterator[dict[str, Any]]:
            yield {**base, "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                                "logprobs": None}]}
            async for chunk in chunks:
                message = chunk.get("message", {})
                delta: dict[str, Any] = {}
                if message.get("content"):
                    delta["content"] = message["content"]
                if message.get("tool_calls"):
                    delta["tool_calls"] = openai_tool_calls(message["tool_calls"])
                done = chunk.get("done")
                if delta or done or chunk.get("logprobs"):
                    yield {**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "logprobs": logprobs_of(chunk),
                                        "finish_reason": finish_reason(chunk) if done else None}],
                           **({"usage": None} if include_usage else {})}
                if done and include_usage:
                    yield {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage(chunk)}

        return sse(stream())
    content, calls, entries, final = "", [], [], {}
    async for chunk in chunks:
        message = chunk.get("message", {})
        content += message.get("content") or ""
        calls = message.get("tool_calls") or calls
        entries += chunk.get("logprobs") or []
        final = chunk
    message = {"role": "assistant", "content": content if content or not calls else None}
    if calls:
        message["tool_calls"] = openai_tool_calls(calls)
    final = {**final, "message": {**final.get("message", {}), "tool_calls": calls}}
    return JSONResponse({**base, "object": "chat.completion",
                         "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(final),
                                      "logprobs": logprobs_of({"logprobs": entries}) if native["logprobs"] else None}],
                         "usage": usage(final)})


@router.post("/completions")
async def completions(request: Request) -> Response:
    body = await read_json(request)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("prompt must be a non-empty string")
    native = {"model": handlers.model_name(body), "prompt": prompt + (body.get("suffix") or ""), "raw": True,
              "options": native_options(body), "stream": True}
    ident, created = "cmpl-" + secrets.token_hex(12), int(time.time())
    base = {"id": ident, "created": created, "model": native["model"], "system_fingerprint": "camelid"}
    _, chunks = await first_and_rest(handlers.generate(request.app.state.scheduler, native))
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def stream() -> AsyncIterator[dict[str, Any]]:
            async for chunk in chunks:
                done = chunk.get("done")
                yield {**base, "object": "text_completion",
                       "choices": [{"index": 0, "text": chunk.get("response", ""), "logprobs": None,
                                    "finish_reason": finish_reason(chunk) if done else None}]}
                if done and include_usage:
                    yield {**base, "object": "text_completion", "choices": [], "usage": usage(chunk)}

        return sse(stream())
    text, final = "", {}
    async for chunk in chunks:
        text += chunk.get("response", "")
        final = chunk
    return JSONResponse({**base, "object": "text_completion",
                         "choices": [{"index": 0, "text": text, "logprobs": None,
                                      "finish_reason": finish_reason(final)}], "usage": usage(final)})


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(time.time()), "owned_by": "library"}


@router.get("/models")
async def models() -> dict[str, Any]:
    import asyncio

    return {"object": "list", "data": [model_object(m["name"]) for m in await asyncio.to_thread(list_models)]}


@router.get("/models/{model:path}")
async def model(model: str) -> dict[str, Any]:
    import asyncio

    from camelid.server.handlers import check_loadable

    try:
        await asyncio.to_thread(check_loadable, model)
    except (UnknownModel, BadRequest):
        raise UnknownModel(f"The model '{model}' does not exist") from None
    return model_object(model)


@router.post("/embeddings")
async def embeddings(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    inputs = body.get("input")
    native = {"model": handlers.model_name(body), "input": inputs, "dimensions": body.get("dimensions")}
    result = await handlers.embed(request.app.state.scheduler, native)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, vector in enumerate(result["embeddings"]):
        value: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = result.get("prompt_eval_count", 0)
    return {"object": "list", "data": data, "model": native["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
