"""GGUF reading (and, through the `gguf` package, writing)."""

from camelid.gguf.reader import GGUFFile, TensorInfo

__all__ = ["GGUFFile", "TensorInfo"]
