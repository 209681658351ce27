"""Structured output and tool calls through the server: every constrained answer parses and validates."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

pytestmark = pytest.mark.slow
MODEL = "smollm2:135m"
Server = Any  # tests/server/conftest.py: LiveServer

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
    },
    "required": ["name", "age", "colour", "hobbies"],
    "additionalProperties": False,
}
PROMPTS = ["Describe a person.", "Invent a pirate.", "Tell me about your neighbour.", "Create a character.",
           "Describe a famous painter."]


def test_twenty_schema_requests_validate(live_server: Server) -> None:
    outputs = []
    for i in range(20):
        reply = httpx.post(live_server.url("/api/chat"), timeout=120, json={
            "model": MODEL, "stream": False, "format": SCHEMA,
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)] + " Answer in JSON."}],
            "options": {"seed": i, "temperature": 1.0, "num_predict": 300}})
        assert reply.status_code == 200, reply.text
        text = reply.json()["message"]["content"]
        value = json.loads(text)
        jsonschema.validate(value, SCHEMA)
        outputs.append(text)
    assert len(set(outputs)) > 1


def test_json_mode_and_openai_response_format(live_server: Server) -> None:
    reply = httpx.post(live_server.url("/api/generate"), timeout=120, json={
        "model": MODEL, "prompt": "List three fruits as JSON.", "format": "json", "stream": False,
        "options": {"num_predict": 200, "temperature": 0}}).json()  # greedy: sampling may run a string on
    assert isinstance(json.loads(reply["response"]), dict)
    client = openai.OpenAI(base_url=live_server.base + "/v1", api_key="unused", max_retries=0)
    result = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Describe a person."}], max_tokens=300, seed=5,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}})
    jsonschema.validate(json.loads(result.choices[0].message.content), SCHEMA)
    bad = httpx.post(live_server.url("/api/chat"), json={"model": MODEL, "format": "yaml",
                                                          "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 400 and "format" in bad.json()["error"]


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time in a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}


def test_tool_calls_openai_and_native_shapes(live_server: Server) -> None:
    client = openai.OpenAI(base_url=live_server.base + "/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    result = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME],
                                            tool_choice="required", max_tokens=80, temperature=0)
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name in ("get_weather", "get_time")
    arguments = json.loads(call.function.arguments)  # a JSON string in the OpenAI shape
    assert isinstance(arguments.get("city"), str)
    named = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME], max_tokens=80,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                           stream=True)
    deltas = [c.choices[0] for c in named if c.choices]
    calls = [tc for d in deltas for tc in (d.delta.tool_calls or [])]
    assert deltas[-1].finish_reason == "tool_calls" and [c.function.name for c in calls] == ["get_weather"]
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER["function"]["parameters"])
    # a tool result goes back in, and the next turn is plain text
    follow = client.chat.completions.create(model=MODEL, max_tokens=20, temperature=0, tools=[WEATHER], messages=[
        *messages, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'}])
    assert follow.choices[0].finish_reason in ("stop", "length")

    native = httpx.post(live_server.url("/api/chat"), timeout=120, json={
        "model": MODEL, "messages": messages, "tools": [WEATHER], "tool_choice": "required", "stream": False,
        "options": {"num_predict": 80, "temperature": 0}}).json()
    [native_call] = native["message"]["tool_calls"]
    assert native_call["function"]["name"] == "get_weather"
    assert isinstance(native_call["function"]["arguments"], dict)  # an object in Ollama's shape
