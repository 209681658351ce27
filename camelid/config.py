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

ALL_VARS = [CAMELID_HOME, CAMELID_MODELS, CAMELID_NUM_THREADS, CAMELID_DEFAULT_MODEL, HF_ENDPOINT, OLLAMA_MODELS,
            CAMELID_PULL_RETRIES]

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
