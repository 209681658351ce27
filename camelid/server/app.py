"""`create_app()`: the FastAPI application behind `camelid serve` — Ollama's API, the OpenAI API, llama-server's
extras (/health, /metrics, /tokenize, /detokenize) and the web chat page, over one scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from camelid import __version__
from camelid.errors import BadRequest, CamelidError
from camelid.scheduler import Scheduler
from camelid.server import handlers, ollama_api, openai_api, speech_api
from camelid.server.errors import error_status

log = logging.getLogger("camelid")
WEB = Path(__file__).with_name("web")


def create_app(scheduler: Scheduler | None = None) -> FastAPI:
    scheduler = scheduler or Scheduler()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(scheduler.reap())
        try:
            yield
        finally:
            reaper.cancel()
            await scheduler.close()

    app = FastAPI(title="camelid", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.scheduler = scheduler

    @app.exception_handler(CamelidError)
    async def camelid_error(request: Request, err: CamelidError) -> JSONResponse:
        status = error_status(err)
        if request.url.path.startswith("/v1/"):
            return JSONResponse(openai_api.error_body(err, status), status_code=status)
        return JSONResponse({"error": str(err)}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        message = f"internal error: {type(err).__name__}: {err}"
        if request.url.path.startswith("/v1/"):
            return JSONResponse(openai_api.error_body(RuntimeError(message), 500), status_code=500)
        return JSONResponse({"error": message}, status_code=500)

    app.include_router(ollama_api.router)
    app.include_router(openai_api.router)
    app.include_router(speech_api.router)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        from camelid.server.metrics import render

        return Response(render(scheduler), media_type="text/plain; version=0.0.4")

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        body = await ollama_api.read_json(request)
        content = body.get("content")
        if not isinstance(content, str):
            raise BadRequest("content must be a string")
        llm = (await handlers.runner_for(scheduler, with_model(body)))[0].llm
        ids = llm.tokenize(content, add_bos=bool(body.get("add_special")) and llm.tokenizer.add_bos,
                           special=bool(body.get("parse_special", True)))
        if body.get("with_pieces"):
            return {"tokens": [{"id": i, "piece": llm.detokenize([i])} for i in ids]}
        return {"tokens": ids}

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        body = await ollama_api.read_json(request)
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise BadRequest("tokens must be a list of integers")
        llm = (await handlers.runner_for(scheduler, with_model(body)))[0].llm
        if any(not 0 <= t < llm.vocab_size for t in tokens):
            raise BadRequest(f"token ids must lie in [0, {llm.vocab_size})")
        return {"content": llm.detokenize(tokens)}

    @app.head("/")
    async def head_root() -> Response:
        return Response(status_code=200)

    if WEB.is_dir():
        app.mount("/", StaticFiles(directory=WEB, html=True), name="web")
    else:
        @app.get("/")
        async def root() -> Response:
            return Response("camelid is running", media_type="text/plain")

    return app


def with_model(body: dict[str, Any]) -> dict[str, Any]:
    """llama-server's endpoints name no model: the default one unless the body says."""
    from camelid import config

    return body if body.get("model") else {**body, "model": config.CAMELID_DEFAULT_MODEL.get()}
