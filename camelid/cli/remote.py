"""`camelid run` against a running server (as `ollama run` talks to `ollama serve`): the same calls the REPL makes
on a local model — chat, info, options, system, template — over the server's native API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from camelid import config
from camelid.engine.options import Options
from camelid.engine.stats import Stats
from camelid.errors import BadRequest, CamelidError, UnknownModel


def server_url() -> str | None:
    """The server at CAMELID_HOST when one answers (a quick probe; None when nothing listens)."""
    host, port = config.host_and_port()
    url = f"http://{host}:{port}"
    try:
        reply = httpx.get(url + "/api/version", timeout=httpx.Timeout(1.0, connect=0.25), trust_env=False)
    except httpx.HTTPError:
        return None
    return url if reply.status_code == 200 and "version" in reply.text else None


class RemoteGeneration:
    def __init__(self, client: httpx.Client, body: dict[str, Any]) -> None:
        self.client, self.body = client, body
        self.stats: Stats | None = None
        self._parts: list[str] = []
        self._response: httpx.Response | None = None

    def __iter__(self) -> Iterator[str]:
        with self.client.stream("POST", "/api/chat", json=self.body) as response:
            self._response = response
            if response.status_code != 200:
                response.read()
                raise_for(response)
            for line in response.iter_lines():
                chunk = json.loads(line)
                if "error" in chunk:
                    raise CamelidError(chunk["error"])
                piece = chunk.get("message", {}).get("content", "")
                if piece:
                    self._parts.append(piece)
                    yield piece
                if chunk.get("done"):
                    self.stats = stats_of(chunk)

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()


def stats_of(final: dict[str, Any]) -> Stats:
    """The timings of a server's final chunk."""
    names = ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration", "load_duration",
             "total_duration")
    return Stats(**{name: int(final.get(name, 0)) for name in names}, done_reason=final.get("done_reason", ""))


def raise_for(response: httpx.Response) -> None:
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    if isinstance(message, dict):
        message = message.get("message", str(message))
    if response.status_code == 404:
        raise UnknownModel(message)
    if response.status_code == 400:
        raise BadRequest(message)
    raise CamelidError(f"server error {response.status_code}: {message}")


class RemoteLLM:
    """A model served by a camelid (or Ollama) server."""

    def __init__(self, url: str, name: str | None, report: Any = None) -> None:
        self.client = httpx.Client(base_url=url, timeout=httpx.Timeout(600.0, connect=5.0), trust_env=False)
        self.name = name or config.CAMELID_DEFAULT_MODEL.get()
        self.options = Options()
        shown = self.client.post("/api/show", json={"model": self.name})
        if shown.status_code == 404:  # pull it through the server first, as `ollama run` does
            self._pull(report)
            shown = self.client.post("/api/show", json={"model": self.name})
        if shown.status_code != 200:
            raise_for(shown)
        self.facts = shown.json()
        self.system = self.facts.get("system") or None
        self.template = self.facts.get("template") or None
        self.chat_template = self.template

    def _pull(self, report: Any) -> None:
        from camelid.store.pull import PullEvent

        with self.client.stream("POST", "/api/pull", json={"model": self.name}) as response:
            if response.status_code != 200:
                response.read()
                raise_for(response)
            for line in response.iter_lines():
                event = json.loads(line)
                if "error" in event:
                    raise CamelidError(event["error"])
                if report is not None:
                    report(PullEvent(event.get("status", ""), event.get("digest"), event.get("total"),
                                     event.get("completed")))

    def info(self) -> dict[str, Any]:
        model_info, details = self.facts.get("model_info") or {}, self.facts.get("details") or {}
        arch = model_info.get("general.architecture", details.get("family", ""))
        return {"architecture": arch, "parameters": details.get("parameter_size"),
                "context_length": model_info.get(f"{arch}.context_length"),
                "embedding_length": model_info.get(f"{arch}.embedding_length"),
                "quantization": details.get("quantization_level")}

    def chat(self, messages: list[dict[str, Any]], **options: Any) -> RemoteGeneration:
        return RemoteGeneration(self.client, {"model": self.name, "messages": messages, "stream": True,
                                              "options": options})
