"""The native (Ollama-shaped) request handlers: each turns a request body into Ollama's response objects — a
stream of chunks for generate and chat. The HTTP routes of both APIs call these; the OpenAI API only translates."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from camelid.engine.sequence import Done, GenerationState, Piece
from camelid.errors import BadRequest, UnknownModel
from camelid.scheduler import Failure, Runner, Scheduler, parse_keep_alive


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def model_name(body: dict[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("model is required")
    return name.strip()


def request_options(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object")
    return options


def check_loadable(name: str) -> None:
    """404 before any loading: the model must be in the library (or an installed catalog package)."""
    from camelid.store.resolve import resolve

    try:
        resolve(name, pull_missing=False)
    except UnknownModel:
        raise UnknownModel(f"model '{name}' not found, try pulling it first") from None


async def runner_for(scheduler: Scheduler, body: dict[str, Any]) -> tuple[Runner, int]:
    """The model's runner and the nanoseconds spent loading it by this request (0 when it was loaded)."""
    name = model_name(body)
    keep = parse_keep_alive(body.get("keep_alive"))
    num_ctx = request_options(body).get("num_ctx")
    loaded = name in scheduler.runners
    if not loaded:
        await asyncio.to_thread(check_loadable, name)
    start = time.perf_counter_ns()
    runner = await scheduler.runner(name, keep, int(num_ctx) if num_ctx else None)
    return runner, 0 if loaded else time.perf_counter_ns() - start


def metrics(stats: Any, load_ns: int) -> dict[str, Any]:
    """Ollama's timing fields, omitted when zero."""
    values = {"total_duration": stats.total_duration + load_ns, "load_duration": load_ns,
              "prompt_eval_count": stats.prompt_eval_count, "prompt_eval_duration": stats.prompt_eval_duration,
              "eval_count": stats.eval_count, "eval_duration": stats.eval_duration}
    return {k: v for k, v in values.items() if v}


class Submission:
    """A sequence submitted to a runner, its events read from the event loop; closing it cancels the sequence."""

    def __init__(self, scheduler: Scheduler, runner: Runner, state: GenerationState) -> None:
        self.state, self.queue = state, asyncio.Queue()
        loop = asyncio.get_running_loop()
        scheduler.check_queue()
        runner.submit(state, lambda events: loop.call_soon_threadsafe(self.queue.put_nowait, events))

    async def events(self) -> AsyncIterator[Piece | Done | Failure]:
        try:
            while True:
                for event in await self.queue.get():
                    yield event
                    if isinstance(event, Done | Failure):
                        return
        finally:
            if not self.state.finished:
                self.state.cancelled = True  # the client went away: the runner drops it at its next step


def constraint_for(body: dict[str, Any], tokenizer: Any) -> Any:
    """A grammar for `format` (json or a schema), or for a forced tool call (`tool_choice`: "required" or
    {"type": "function", "function": {"name": ...}}, which the OpenAI translation passes on)."""
    fmt, choice, tools = body.get("format"), body.get("tool_choice"), body.get("tools")
    forced = tools and (choice == "required" or isinstance(choice, dict))
    if fmt in (None, "") and not forced:
        return None
    from camelid.engine.grammar import Constraint, grammar_for, tool_call_grammar

    if forced:
        name = ((choice.get("function") or {}).get("name") if isinstance(choice, dict) else None)
        return Constraint(tokenizer, tool_call_grammar(tools, name))
    grammar = grammar_for(fmt)
    return Constraint(tokenizer, grammar) if grammar else None


def new_state(runner: Runner, ids: list[int], body: dict[str, Any]) -> GenerationState:
    llm = runner.llm
    options = llm.options.merged(request_options(body))
    top = body.get("top_logprobs")
    wants_logprobs = bool(body.get("logprobs")) or bool(top)
    return GenerationState(ids, options, llm.tokenizer, llm.n_ctx, constraint=constraint_for(body, llm.tokenizer),
                           top_logprobs=int(top or 0) if wants_logprobs else None)


def logprob_entries(piece: Piece, tokenizer: Any) -> list[dict[str, Any]]:
    if piece.logprob is None or piece.token is None:
        return []
    entry: dict[str, Any] = {"token": tokenizer.decode([piece.token], skip_special=False),
                             "logprob": piece.logprob}
    if piece.top:
        entry["top_logprobs"] = [{"token": tokenizer.decode([t], skip_special=False), "logprob": lp}
                                 for t, lp in piece.top]
    return [entry]


def load_reply(body: dict[str, Any], kind: str, unloaded: bool) -> dict[str, Any]:
    reply: dict[str, Any] = {"model": model_name(body), "created_at": now_iso(), "done": True,
                             "done_reason": "unload" if unloaded else "load"}
    if kind == "chat":
        reply["message"] = {"role": "assistant", "content": ""}
    else:
        reply["response"] = ""
    return reply


async def load_or_unload(scheduler: Scheduler, body: dict[str, Any], kind: str) -> dict[str, Any]:
    """An empty prompt/messages loads the model; with keep_alive 0 it unloads it."""
    keep = parse_keep_alive(body.get("keep_alive"))
    if keep == 0:
        await scheduler.unload(model_name(body))
        return load_reply(body, kind, unloaded=True)
    await runner_for(scheduler, body)
    return load_reply(body, kind, unloaded=False)


async def chat(scheduler: Scheduler, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """/api/chat as a stream of Ollama chunks (the last one has done: true, or is an error)."""
    messages = body.get("messages")
    if messages is None or messages == []:
        yield await load_or_unload(scheduler, body, "chat")
        return
    if not isinstance(messages, list):
        raise BadRequest("messages must be a list")
    runner, load_ns = await runner_for(scheduler, body)
    llm = runner.llm
    tools = body.get("tools") or None
    cleaned = [clean_message(m) for m in messages]
    ids = await asyncio.to_thread(llm.chat_ids, llm.with_defaults(cleaned), tools)
    state = new_state(runner, ids, body)
    name = model_name(body)
    style = tool_style(llm) if tools else None
    held: list[str] = []  # text held back while it may still be a tool call (only at the start of the answer)
    async for event in Submission(scheduler, runner, state).events():
        if isinstance(event, Failure):
            yield {"error": str(event.error)}
            return
        if isinstance(event, Piece):
            chunk = {"model": name, "created_at": now_iso(),
                     "message": {"role": "assistant", "content": event.text}, "done": False}
            if state.top_logprobs is not None:
                chunk["logprobs"] = logprob_entries(event, llm.tokenizer)
            if style is not None:
                from camelid.engine.tools import may_be_tool_call

                held.append(event.text)
                if may_be_tool_call("".join(held), style):
                    continue
                chunk["message"]["content"], held, style = "".join(held), [], None  # plain text: stream it
            if chunk["message"]["content"] or "logprobs" in chunk:
                yield chunk
            continue
        final: dict[str, Any] = {"model": name, "created_at": now_iso(),
                                 "message": {"role": "assistant", "content": ""}, "done": True,
                                 "done_reason": event.stats.done_reason, **metrics(event.stats, load_ns)}
        if held:
            from camelid.engine.tools import ollama_tool_calls, parse_tool_calls

            content, calls = parse_tool_calls("".join(held), tools, tool_style(llm))
            final["message"]["content"] = content
            if calls:
                final["message"]["tool_calls"] = ollama_tool_calls(calls)
        yield final


def tool_style(llm: Any) -> str:
    from camelid.engine.tools import tool_format

    return tool_format(llm.template or llm.chat_template)


def clean_message(message: Any) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise BadRequest("each message must be an object with role and content")
    if message.get("images"):
        raise BadRequest("images are not supported by this model")
    out = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls", "tool_name", "name",
                                                     "tool_call_id")}
    out["content"] = "" if out.get("content") is None else out["content"]
    if not isinstance(out["content"], str):
        raise BadRequest("message content must be a string")
    return out


async def generate(scheduler: Scheduler, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """/api/generate as a stream of Ollama chunks."""
    prompt = body.get("prompt")
    if prompt is None or prompt == "":
        yield await load_or_unload(scheduler, body, "generate")
        return
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    if body.get("images"):
        raise BadRequest("images are not supported by this model")
    runner, load_ns = await runner_for(scheduler, body)
    llm = runner.llm
    if body.get("raw"):
        ids = await asyncio.to_thread(llm.tokenize, prompt, llm.tokenizer.add_bos, True)
    else:
        messages = ([{"role": "system", "content": body["system"]}] if body.get("system") else [])
        messages.append({"role": "user", "content": prompt})
        ids = await asyncio.to_thread(llm.chat_ids, llm.with_defaults(messages))
    context = body.get("context")
    if isinstance(context, list) and context and not body.get("raw"):
        ids = [int(t) for t in context] + ids
    state = new_state(runner, ids, body)
    name = model_name(body)
    async for event in Submission(scheduler, runner, state).events():
        if isinstance(event, Failure):
            yield {"error": str(event.error)}
            return
        if isinstance(event, Piece):
            chunk: dict[str, Any] = {"model": name, "created_at": now_iso(), "response": event.text, "done": False}
            if state.top_logprobs is not None:
                chunk["logprobs"] = logprob_entries(event, llm.tokenizer)
            if event.text or "logprobs" in chunk:
                yield chunk
            continue
        yield {"model": name, "created_at": now_iso(), "response": "", "done": True,
               "done_reason": event.stats.done_reason, "context": ids + event.tokens,
               **metrics(event.stats, load_ns)}


async def embed(scheduler: Scheduler, body: dict[str, Any], field: str = "input") -> dict[str, Any]:
    """/api/embed: mean-pooled, L2-normalized final hidden states, one vector per input."""
    inputs = body.get(field)
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise BadRequest(f"{field} must be a string or a list of strings")
    runner, load_ns = await runner_for(scheduler, body)
    llm = runner.llm
    truncate = body.get("truncate", True)
    dimensions = body.get("dimensions")
    start = time.perf_counter_ns()
    vectors, n_tokens = [], 0
    for text in inputs:
        ids = llm.tokenize(text, add_bos=llm.tokenizer.add_bos, special=False)
        if len(ids) > llm.n_ctx:
            if not truncate:
                raise BadRequest(f"input is {len(ids)} tokens, longer than the context length {llm.n_ctx}")
            ids = ids[:llm.n_ctx]
        n_tokens += len(ids)
        vector = await asyncio.wrap_future(runner.call(lambda engine, ids=ids: engine.embed(ids, engine.n_slots - 1)))
        if dimensions:
            vector = normalized(vector[:int(dimensions)])
        vectors.append(vector)
    return {"model": model_name(body), "embeddings": vectors,
            "total_duration": time.perf_counter_ns() - start + load_ns, "load_duration": load_ns,
            "prompt_eval_count": n_tokens}


def normalized(vector: list[float]) -> list[float]:
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]
