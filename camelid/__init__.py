"""camelid: run quantized GGUF models on your own machine — llama.cpp + Ollama + whisper.cpp in one package."""

from camelid.errors import BadModelFile, BadRequest, CamelidError, UnknownModel, UnsupportedModel
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
