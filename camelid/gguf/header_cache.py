"""A cache of parsed GGUF headers, so that opening a model does not decode its vocabulary again.

A model's header holds its whole vocabulary (SmolLM2: 49 152 tokens and 48 900 merges, ~100 000 strings): reading
it costs ~60 ms per open, most of a cold `camelid run`'s start outside the compute. The parsed header (metadata,
raw tensor infos, where the header ends) is kept with `marshal` under CAMELID_HOME/cache/gguf, keyed by the
file's absolute path, size, modification time, inode and device: a changed or replaced file is a new key, and
saving it removes the entry its path had before (one entry per path). Only headers with a vocabulary-sized array are kept (tiny test files are not worth an entry). Any failure to read
or write the cache just means parsing the file; `CAMELID_GGUF_CACHE=0` turns it off.
"""

from __future__ import annotations

import hashlib
import marshal
import os
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when the cached shape changes
MIN_ARRAY = 1000  # keep headers that have an array at least this long


def _entry(path: Path) -> Path | None:
    if os.environ.get("CAMELID_GGUF_CACHE", "1") == "0":
        return None
    from camelid import config

    try:
        st = path.stat()
    except OSError:
        return None
    resolved = f"{FORMAT}|{path.resolve()}"
    key = f"{resolved}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}|{st.st_dev}"
    return config.home_dir() / "cache" / "gguf" / f"{_digest(resolved)}-{_digest(key)}.marshal"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load(path: Path) -> tuple[dict[str, Any], list[tuple], int] | None:
    """(metadata, raw tensor infos, header end) of `path` when cached, else None."""
    entry = _entry(path)
    if entry is None:
        return None
    try:
        metadata, raw_infos, header_end = marshal.loads(entry.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return metadata, raw_infos, header_end


def save(path: Path, header: tuple[dict[str, Any], list[tuple], int]) -> None:
    """Keep a parsed header when it has a vocabulary-sized array (best effort: errors are ignored)."""
    if not any(isinstance(v, list) and len(v) >= MIN_ARRAY for v in header[0].values()):
        return
    entry = _entry(path)
    if entry is None:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(marshal.dumps(header))
        os.replace(partial, entry)
        for stale in entry.parent.glob("*.marshal"):  # the path's older entries, and the unprefixed ones of before
            prefix, _, rest = stale.name.partition("-")
            if stale != entry and (prefix == entry.name.partition("-")[0] or not rest):
                stale.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
