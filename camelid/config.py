"""Every environment variable, path and default camelid reads, each declared once with its description."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    description: str

    def get(self) -> str:
        return os.environ.get(self.name, self.default)


CAMELID_HOME = EnvVar("CAMELID_HOME", str(Path.home() / ".camelid"),
                      "camelid's data folder: assembled model files, later the model store")
CAMELID_MODELS = EnvVar("CAMELID_MODELS", "", "model store folder (default: $CAMELID_HOME/models)")
CAMELID_NUM_THREADS = EnvVar("CAMELID_NUM_THREADS", "0", "CPU threads for compute; 0 = all physical cores")
CAMELID_DEFAULT_MODEL = EnvVar("CAMELID_DEFAULT_MODEL", "smollm2:135m", "model used when none is named")
HF_ENDPOINT = EnvVar("HF_ENDPOINT", "https://huggingface.co",
                     "Hugging Face server for `pull hf.co/ORG/REPO` (the variable huggingface_hub reads)")
OLLAMA_MODELS = EnvVar("OLLAMA_MODELS", str(Path.home() / ".ollama" / "models"),
                       "an existing Ollama store, read by `camelid import --ollama`")
CAMELID_PULL_RETRIES = EnvVar("CAMELID_PULL_RETRIES", "6",
                              "retries of a download after its first attempt, before a pull gives up")

CAMELID_HOST = EnvVar("CAMELID_HOST", "127.0.0.1:11434", "address `camelid serve` listens on and `run` looks for")
CAMELID_KEEP_ALIVE = EnvVar("CAMELID_KEEP_ALIVE", "5m", "how long an idle model stays loaded (Ollama's keep_alive)")
CAMELID_NUM_PARALLEL = EnvVar("CAMELID_NUM_PARALLEL", "4", "sequences per model decoded together in one batch")
CAMELID_MAX_LOADED_MODELS = EnvVar("CAMELID_MAX_LOADED_MODELS", "3", "models kept loaded at once")
CAMELID_MAX_QUEUE = EnvVar("CAMELID_MAX_QUEUE", "512", "requests waiting for a slot before the server answers 503")
CAMELID_CONTEXT_LENGTH = EnvVar("CAMELID_CONTEXT_LENGTH", "4096", "context window per sequence when a request "
                                "sets no num_ctx")
CAMELID_MAX_REQUEST_MB = EnvVar("CAMELID_MAX_REQUEST_MB", "64",
                                "largest JSON request body the server reads (MB); larger ones are answered 413")

ALL_VARS = [CAMELID_HOME, CAMELID_MODELS, CAMELID_NUM_THREADS, CAMELID_DEFAULT_MODEL, HF_ENDPOINT, OLLAMA_MODELS,
            CAMELID_PULL_RETRIES, CAMELID_HOST, CAMELID_KEEP_ALIVE, CAMELID_NUM_PARALLEL, CAMELID_MAX_LOADED_MODELS,
            CAMELID_MAX_QUEUE, CAMELID_CONTEXT_LENGTH, CAMELID_MAX_REQUEST_MB]

# Ollama's request defaults (docs/api: options); llama.cpp's CLI overrides a few of them.
DEFAULT_NUM_CTX = 4096
DEFAULT_NUM_BATCH = 512


def home_dir() -> Path:
    """camelid's data folder, created on demand."""
    path = Path(CAMELID_HOME.get()).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """The model store: CAMELID_MODELS, else $CAMELID_HOME/models (created on demand)."""
    path = Path(CAMELID_MODELS.get() or Path(CAMELID_HOME.get()) / "models").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_threads() -> int:
    """Threads to use when the user names none: CAMELID_NUM_THREADS, else the CPUs this process may run on."""
    try:
        wanted = int(CAMELID_NUM_THREADS.get())
    except ValueError:
        wanted = 0
    if wanted > 0:
        return wanted
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def int_setting(var: EnvVar, minimum: int = 0) -> int:
    """An integer variable; its default when unset or unreadable."""
    try:
        return max(minimum, int(var.get()))
    except ValueError:
        return max(minimum, int(var.default))


def host_and_port() -> tuple[str, int]:
    """CAMELID_HOST as (host, port); a bare host gets port 11434, a bare ":port" host 127.0.0.1."""
    text = CAMELID_HOST.get().strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "11434")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        return host or "127.0.0.1", 11434
