"""Facts about a model file, as `ollama show` prints them: architecture, parameters, lengths, quantization."""

from __future__ import annotations

from typing import Any

from camelid.gguf.reader import GGUFFile


def file_type_name(file_type: int | None) -> str:
    """llama.cpp's name for `general.file_type` (Q4_K_M, Q4_1, F16, ...)."""
    if file_type is None:
        return "unknown"
    from gguf.constants import LlamaFileType

    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return f"type {file_type}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def parameter_size(n: int) -> str:
    """134515008 -> '134.52M', as Ollama shows it."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def describe(gguf: GGUFFile, n_ctx: int | None = None) -> dict[str, Any]:
    """A JSON-ready summary of a GGUF model."""
    arch = gguf.architecture
    n_params = sum(t.n_elements for t in gguf.tensors.values())
    meta = gguf.metadata
    info = {
        "architecture": arch,
        "name": meta.get("general.name", ""),
        "parameters": parameter_size(n_params),
        "parameter_count": n_params,
        "context_length": meta.get(f"{arch}.context_length"),
        "embedding_length": meta.get(f"{arch}.embedding_length"),
        "block_count": meta.get(f"{arch}.block_count"),
        "quantization": file_type_name(meta.get("general.file_type")),
        "file_size": gguf.size,
        "license": meta.get("general.license", ""),
        "path": str(gguf.path),
    }
    if n_ctx is not None:
        info["num_ctx"] = n_ctx
    return info
