"""Model architectures (one file each, registered by GGUF architecture name) and their shared layers."""

from camelid.models import gemma3, llama, phi3, qwen  # noqa: F401  (importing registers the architectures)
from camelid.models.base import DecoderModel
from camelid.models.config import ModelConfig
from camelid.models.registry import get_architecture, register, supported_architectures

__all__ = ["DecoderModel", "ModelConfig", "get_architecture", "register", "supported_architectures"]
