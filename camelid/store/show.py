"""What `camelid show` reports about a model: Ollama's `/api/show` fields, read without loading the model."""

from __future__ import annotations

import json
from typing import Any

from camelid.store.resolve import ResolvedModel


def gguf_facts(resolved: ResolvedModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """(describe() summary, selected GGUF metadata keys as Ollama's model_info) of an LLM."""
    from camelid.gguf.info import describe
    from camelid.gguf.reader import GGUFFile

    assert resolved.path is not None
    gguf = GGUFFile(resolved.path)
    model_info = {key: value for key, value in gguf.metadata.items()
                  if not key.startswith("tokenizer.ggml.") and key != "tokenizer.chat_template"
                  and not isinstance(value, list | tuple)}
    info = describe(gguf)
    info["chat_template"] = gguf.metadata.get("tokenizer.chat_template") or ""
    info["fim"] = "tokenizer.ggml.fim_pre_token_id" in gguf.metadata
    info["pooling"] = gguf.metadata.get(f"{gguf.architecture}.pooling_type")
    return info, model_info


def capabilities(resolved: ResolvedModel, info: dict[str, Any] | None) -> list[str]:
    if resolved.format != "gguf" or info is None:
        return ["transcription"]
    template = (resolved.template or "") + (info.get("chat_template") or "")
    found = ["completion"]
    if ".Tools" in template or "tools" in template:
        found.append("tools")
    if ".Suffix" in template or info.get("fim"):
        found.append("insert")
    if info.get("pooling") not in (None, 0):
        found.append("embedding")
    if "<think>" in template or ".Think" in template or "enable_thinking" in template:
        found.append("thinking")
    return found


def show(resolved: ResolvedModel) -> dict[str, Any]:
    """The fields of Ollama's /api/show (plus `details`), JSON-ready."""
    info, model_info = gguf_facts(resolved) if resolved.format == "gguf" else (None, {})
    details: dict[str, Any] = {"format": resolved.format, "parent_model": ""}
    if info is not None:
        details.update(family=info["architecture"], families=[info["architecture"]],
                       parameter_size=info["parameters"], quantization_level=info["quantization"])
    else:
        config = resolved.files.get("config.json")
        family = "whisper"
        if config is not None:
            try:
                family = str(json.loads(config.read_text()).get("architectures", ["whisper"])[0]).lower() or family
            except (ValueError, OSError, IndexError, AttributeError):
                pass
        details.update(family=family, families=[family], parameter_size="", quantization_level="")
    return {
        "name": resolved.name,
        "license": "\n".join(resolved.licenses),
        "modelfile": modelfile_text(resolved),
        "parameters": parameters_text(resolved.parameters),
        "template": resolved.template if resolved.template is not None else (info or {}).get("chat_template", ""),
        "system": resolved.system or "",
        "messages": resolved.messages,
        "details": details,
        "model_info": model_info,
        "info": {k: v for k, v in (info or {}).items() if k not in ("chat_template", "fim", "pooling")},
        "capabilities": capabilities(resolved, info),
        "files": {name: str(path) for name, path in resolved.files.items()},
    }


def parameter_pairs(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, text) pairs of stored parameters; one camelid does not know (from an Ollama store) is kept as is."""
    from camelid.errors import BadRequest
    from camelid.store.modelfile import render_parameters

    pairs: list[tuple[str, str]] = []
    for name, value in parameters.items():
        try:
            pairs += render_parameters({name: value})
        except BadRequest:
            values = value if isinstance(value, list) else [value]
            pairs += [(name, json.dumps(v) if not isinstance(v, str) else v) for v in values]
    return pairs


def parameters_text(parameters: dict[str, Any]) -> str:
    """Ollama's `parameters` string: one `name value` line per value."""
    return "\n".join(f"{name:<30} {value}" for name, value in parameter_pairs(parameters))


def _known(name: str) -> bool:
    import dataclasses

    from camelid.engine.options import Options

    return name in {f.name for f in dataclasses.fields(Options)}


def modelfile_text(resolved: ResolvedModel) -> str:
    """A Modelfile that recreates the model (`create NEW -f` of it gives the same layers)."""
    from camelid.store.modelfile import Modelfile, render, render_parameters

    source = str(resolved.path) if resolved.path is not None else resolved.name  # a folder model: by name
    body = render(Modelfile(from_=source, parameters=render_parameters(
        {k: v for k, v in resolved.parameters.items() if _known(k)}),
                            template=resolved.template, system=resolved.system,
                            licenses=list(resolved.licenses),
                            messages=[(m["role"], m["content"]) for m in resolved.messages]))
    return (f'# Modelfile generated by "camelid show"\n# To build a new Modelfile based on this, replace FROM '
            f"with:\n# FROM {resolved.name}\n\n{body}")
