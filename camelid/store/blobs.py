"""The store on disk: content-addressed blobs and one manifest per name, in Ollama's layout.

    <root>/blobs/sha256-<hex>                      a finished, verified blob (never written in place)
    <root>/blobs/sha256-<hex>-partial              a download under way; the next pull resumes it
    <root>/manifests/<host>/<namespace>/<model>/<tag>

Crash safety comes from ordering: a blob appears under its final name only by an atomic rename after its digest
has been checked, and a manifest is written (atomically) only after every blob it names exists. A pull killed at
any moment leaves at most a partial file, which no listing shows. Writers of one name or one blob serialize on a
file lock, so two pulls of one model never corrupt it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from camelid import config
from camelid.errors import BadModelFile, CamelidError, UnknownModel
from camelid.store.manifest import Manifest, check_digest, sha256_digest
from camelid.store.names import ModelName


class StoreError(CamelidError):
    """The store cannot do what was asked: full disk, a blob that fails its digest, a name already taken."""


@dataclass(frozen=True)
class Entry:
    """One listed model."""

    name: ModelName
    manifest: Manifest
    manifest_digest: str  # sha256 of the manifest file: `ollama list`'s ID (first 12 hex digits)
    modified: float  # mtime of the manifest


def disk_full(err: OSError, what: str) -> StoreError:
    return StoreError(f"not enough disk space to store {what}; free some space and run the command again")


class ModelStore:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else config.models_dir()
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"

    # -- blobs -------------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / check_digest(digest).replace(":", "-")

    def partial_path(self, digest: str) -> Path:
        return self.blobs / (check_digest(digest).replace(":", "-") + "-partial")

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        path = self.blob_path(digest)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def add_stream(self, source: BinaryIO, expected: str | None = None, what: str = "a blob") -> tuple[str, int]:
        """Copy a stream into a blob, hashing as it goes; returns (digest, size). The blob appears only when it
        is complete and (when `expected` is given) matches it."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        temp = self.blobs / f".incoming-{os.getpid()}-{time.monotonic_ns()}"
        digest, size = hashlib.sha256(), 0
        try:
            with temp.open("wb") as out:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            found = "sha256:" + digest.hexdigest()
            if expected is not None and found != check_digest(expected):
                raise StoreError(f"{what} does not match its digest: expected {expected}, got {found}")
            self.commit(temp, found)
            return found, size
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise disk_full(err, what) from None
            raise
        finally:
            temp.unlink(missing_ok=True)

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        digest = sha256_digest(data)
        if not self.has_blob(digest, len(data)):
            import io

            self.add_stream(io.BytesIO(data), digest)
        return digest, len(data)

    def add_file(self, path: Path, expected: str | None = None, link: bool = False) -> tuple[str, int]:
        """Store a local file as a blob. With `link`, a hard link replaces the copy when the file's digest is
        already known to match (same file system), so an imported store costs no space."""
        if link and expected is not None:
            digest = check_digest(expected)
            if self.has_blob(digest):
                return digest, self.blob_path(digest).stat().st_size
            if file_digest(path) != digest:
                raise StoreError(f"{path} does not match its digest {digest}")
            self.blobs.mkdir(parents=True, exist_ok=True)
            temp = self.blobs / f".incoming-{os.getpid()}-{time.monotonic_ns()}"
            try:
                os.link(path, temp)
            except OSError:
                shutil.copyfile(path, temp)
            try:
                self.commit(temp, digest)
            finally:
                temp.unlink(missing_ok=True)
            return digest, path.stat().st_size
        with path.open("rb") as source:
            return self.add_stream(source, expected, what=str(path))

    def commit(self, temp: Path, digest: str) -> Path:
        """Move a verified file into place under its digest (atomic; an existing equal blob wins)."""
        target = self.blob_path(digest)
        if target.is_file():
            temp.unlink(missing_ok=True)
            return target
        os.replace(temp, target)
        return target

    # -- manifests ---------------------------------------------------------------------------------------
    def manifest_file(self, name: ModelName) -> Path:
        return self.manifests.joinpath(*name.manifest_path.parts)

    def read(self, name: ModelName) -> Manifest | None:
        path = self.manifest_file(name)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return Manifest.from_bytes(raw)

    def get(self, name: ModelName) -> Manifest:
        manifest = self.read(name)
        if manifest is None:
            raise UnknownModel(f"model '{name}' not found; try `camelid pull {name}`")
        missing = [d for d in manifest.digests if not self.has_blob(d)]
        if missing:
            raise BadModelFile(f"model '{name}' is incomplete (missing blob {missing[0]}); pull it again")
        return manifest

    def write(self, name: ModelName, manifest: Manifest, raw: bytes | None = None) -> None:
        """Write a manifest atomically, after checking that every blob it names is present. `raw` keeps the
        exact bytes of a manifest read elsewhere (so its digest, the model's ID, stays the same)."""
        missing = [d for d in manifest.digests if not self.has_blob(d)]
        if missing:
            raise StoreError(f"cannot write manifest of {name}: blob {missing[0]} is missing")
        path = self.manifest_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temp.write_bytes(raw if raw is not None else manifest.to_bytes())
            os.replace(temp, path)
        except OSError as err:
            temp.unlink(missing_ok=True)
            if err.errno == errno.ENOSPC:
                raise disk_full(err, f"the manifest of {name}") from None
            raise

    def entries(self) -> list[Entry]:
        """Every complete model, newest first. Unreadable manifests are skipped, never fatal."""
        found = []
        if not self.manifests.is_dir():
            return found
        for path in self.manifests.glob("*/*/*/*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            host, namespace, model, tag = path.relative_to(self.manifests).parts
            try:
                name = ModelName.parse(f"{host}/{namespace}/{model}:{tag}")
                raw = path.read_bytes()
                manifest = Manifest.from_bytes(raw)
            except CamelidError:
                continue
            if all(self.has_blob(d) for d in manifest.digests):
                found.append(Entry(name, manifest, hashlib.sha256(raw).hexdigest(), path.stat().st_mtime))
        return sorted(found, key=lambda e: -e.modified)

    def remove(self, name: ModelName) -> None:
        """Delete a name; blobs no other manifest uses go with it."""
        path = self.manifest_file(name)
        if not path.is_file():
            raise UnknownModel(f"model '{name}' not found")
        with self.lock(name_lock(name)):
            path.unlink()
            for parent in path.parents:
                if parent == self.manifests or not parent.is_relative_to(self.manifests):
                    break
                with contextlib.suppress(OSError):
                    parent.rmdir()  # only when empty
            self.prune()

    def copy(self, source: ModelName, destination: ModelName) -> None:
        self.write(destination, self.get(source))

    def prune(self) -> int:
        """Delete blobs that no manifest names (partial downloads are kept: the next pull resumes them)."""
        used: set[str] = set()
        for path in self.manifests.glob("*/*/*/*") if self.manifests.is_dir() else ():
            with contextlib.suppress(CamelidError, OSError):
                used |= {d.replace(":", "-") for d in Manifest.from_bytes(path.read_bytes()).digests}
        removed = 0
        for blob in self.blobs.glob("sha256-*") if self.blobs.is_dir() else ():
            if blob.name not in used and not blob.name.endswith(("-partial", ".json")):
                blob.unlink(missing_ok=True)
                removed += 1
        return removed

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive, process-wide lock on `key` (a file lock: released by the OS if the holder dies)."""
        folder = self.root / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:120]
        with (folder / f"{safe}.lock").open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def name_lock(name: ModelName) -> str:
    """The lock key writers of one name share."""
    return f"name-{name}"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
