"""The official `ollama` and `openai` Python packages, unchanged, against a camelid server."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import ollama
import openai
import pytest

pytestmark = pytest.mark.slow
MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "num_predict": 12}
Server = Any  # tests/server/conftest.py: LiveServer


@pytest.fixture(scope="module")
def client(live_server: Server) -> ollama.Client:
    return ollama.Client(host=live_server.base)


@pytest.fixture(scope="module")
def oai(live_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base + "/v1", api_key="unused", max_retries=0)


def test_version_and_list(client: ollama.Client, live_server: Server) -> None:
    assert httpx.get(live_server.url("/api/version")).json()["version"]
    names = [m.model for m in client.list().models]
    assert MODEL in names


def test_show(client: ollama.Client) -> None:
    shown = client.show(MODEL)
    assert shown.details.family == "llama" and shown.details.quantization_level == "Q4_1"
    assert "completion" in shown.capabilities and shown.modelinfo["llama.context_length"] == 8192
    assert shown.modelfile.startswith("# Modelfile generated")


def test_chat_not_streamed_and_streamed(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Name three colours."}]
    whole = client.chat(model=MODEL, messages=messages, options=GREEDY)
    assert whole.message.role == "assistant" and whole.message.content.strip()
    assert whole.done and whole.done_reason in ("stop", "length") and 1 <= whole.eval_count <= 12
    assert whole.prompt_eval_count > 5 and whole.total_duration >= whole.eval_duration > 0
    pieces = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert pieces[-1].done and not any(p.done for p in pieces[:-1]) and len(pieces) >= 3
    assert "".join(p.message.content for p in pieces).strip()
    assert pieces[-1].eval_count == len([p for p in pieces[:-1] if p.message.content]) or pieces[-1].eval_count


def test_generate(client: ollama.Client) -> None:
    result = client.generate(model=MODEL, prompt="Why is the sky blue?", options={**GREEDY, "num_predict": 30})
    assert result.done and result.response.strip() and result.context and len(result.context) > 10
    raw = client.generate(model=MODEL, prompt="1, 2, 3, 4,", raw=True, options={"temperature": 0, "num_predict": 4})
    assert raw.response.strip().startswith("5")


def test_embed(client: ollama.Client) -> None:
    result = client.embed(model=MODEL, input=["The cat sat on the mat.", "Stock markets fell today.",
                                              "The cat sat on the mat."])
    a, b, c = result.embeddings
    assert len(a) == 576 and math.isclose(sum(v * v for v in a), 1.0, rel_tol=1e-4)
    assert a == c and a != b
    legacy = httpx.post(client._client.base_url.join("/api/embeddings"), json={"model": MODEL, "prompt": "hi"})
    assert len(legacy.json()["embedding"]) == 576


def test_ps_copy_delete_and_errors(client: ollama.Client) -> None:
    client.chat(model=MODEL, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 1})
    running = client.ps().models
    assert [m.model for m in running] == [MODEL] and running[0].context_length > 0
    client.create(model="copy-source", from_=MODEL, system="You are terse.", parameters={"temperature": 0.1})
    client.copy("copy-source", "copy-dest")
    names = [m.model for m in client.list().models]
    assert "copy-source:latest" in names and "copy-dest:latest" in names
    assert "You are terse." in client.show("copy-dest").modelfile
    client.delete("copy-source")
    client.delete("copy-dest")
    assert "copy-dest:latest" not in [m.model for m in client.list().models]
    with pytest.raises(ollama.ResponseError) as missing:
        client.delete("copy-dest")
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as unknown:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.status_code == 404 and "not found" in unknown.value.error


def test_pull(client: ollama.Client) -> None:
    statuses = [p.status for p in client.pull(MODEL, stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert client.pull(MODEL).status == "success"
    with pytest.raises(ollama.ResponseError) as bad:
        client.pull("../../etc/passwd")
    assert bad.value.status_code == 400


def test_openai_chat(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    result = oai.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0)
    choice = result.choices[0]
    assert result.object == "chat.completion" and choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length") and result.usage.completion_tokens <= 10
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    chunks = list(oai.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_openai_completions_models_embeddings_logprobs(oai: openai.OpenAI) -> None:
    completion = oai.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=4, temperature=0)
    assert completion.choices[0].text.strip().startswith("5")
    assert MODEL in [m.id for m in oai.models.list()] and oai.models.retrieve(MODEL).id == MODEL
    vectors = oai.embeddings.create(model=MODEL, input=["hello", "world"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 576
    result = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                         temperature=0, logprobs=True, top_logprobs=2)
    entries = result.choices[0].logprobs.content
    assert len(entries) == result.usage.completion_tokens
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 2 and e.top_logprobs[0].logprob >= e.logprob - 1e-6
               for e in entries)
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model=MODEL, messages=[])


def test_extras(live_server: Server) -> None:
    assert httpx.get(live_server.url("/health")).json() == {"status": "ok"}
    tokens = httpx.post(live_server.url("/tokenize"), json={"content": "Hello world"}).json()["tokens"]
    assert tokens and httpx.post(live_server.url("/detokenize"), json={"tokens": tokens}).json()["content"] == \
        "Hello world"
    metrics = httpx.get(live_server.url("/metrics")).text
    assert "camelid:tokens_predicted_total" in metrics and "camelid:kv_cache_usage_ratio" in metrics
    bad = httpx.post(live_server.url("/api/chat"), content=b"{not json")
    assert bad.status_code == 400 and "error" in bad.json()
    nested = b'{"model": "' + MODEL.encode() + b'", "format": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    for path in ("/api/generate", "/v1/chat/completions"):  # a RecursionError in json.loads was a 500
        deep = httpx.post(live_server.url(path), content=nested)
        assert deep.status_code == 400 and "nested too deeply" in deep.text
    huge = b'{"model": "' + MODEL.encode() + b'", "prompt": "' + b"x" * (65 << 20) + b'"}'
    for path in ("/api/generate", "/v1/completions"):  # over CAMELID_MAX_REQUEST_MB (64): refused, not parsed
        refused = httpx.post(live_server.url(path), content=huge)
        assert refused.status_code == 413 and "larger than 64 MB" in refused.text

    def chunked():  # no Content-Length: counted while it arrives
        yield b'{"prompt": "'
        for _ in range(66):
            yield b"x" * (1 << 20)
        yield b'"}'

    assert httpx.post(live_server.url("/api/generate"), content=chunked()).status_code == 413
    empty = httpx.post(live_server.url("/api/generate"), json={"model": MODEL})
    assert empty.json()["done_reason"] == "load"
    lines = [json.loads(x) for x in httpx.post(live_server.url("/api/chat"), json={
        "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 2}}).text.splitlines()]
    assert lines[-1]["done"] and all(not x["done"] for x in lines[:-1])


def test_create_from_a_pushed_blob(client: ollama.Client, live_server: Server, tmp_path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.ones(256, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    digest = client.create_blob(path)
    assert httpx.head(live_server.url(f"/api/blobs/{digest}")).status_code == 200
    wrong = httpx.post(live_server.url("/api/blobs/sha256:" + "0" * 64), content=b"not that")
    assert wrong.status_code == 400
    client.create(model="from-blob", files={"tiny.gguf": digest}, system="Hi.")
    assert "from-blob:latest" in [m.model for m in client.list().models]
    client.delete("from-blob")
    refused = httpx.post(live_server.url("/api/create"), json={"model": "x", "from": "/etc/passwd"})
    assert refused.status_code == 400 and "from must name a model" in refused.text
