"""camelid: run quantized GGUF models on your own machine — llama.cpp + Ollama + whisper.cpp in one package.

`load`, `LLM` and `Generation` are imported on first use: they bring in torch, which the model library, the
command line's fast paths and the speech side do not need.
"""

from typing import TYPE_CHECKING, Any

from camelid.errors import BadModelFile, BadRequest, CamelidError, UnknownModel, UnsupportedModel

if TYPE_CHECKING:
    from camelid.llm import LLM, Generation, load

__version__ = "0.1.0"

__all__ = [
           "LLM",
           "BadModelFile",
           "BadRequest",
           "CamelidError",
           "Generation",
           "UnknownModel",
           "UnsupportedModel",
           "__version__",
           "load",
]


def __getattr__(name: str) -> Any:
    if name in ("LLM", "Generation", "load"):
        from camelid import llm

        return getattr(llm, name)
    raise AttributeError(f"module 'camelid' has no attribute {name!r}")
