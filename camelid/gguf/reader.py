"""Read GGUF files on a memory map: metadata as plain Python values, tensors as zero-copy uint8 views.

Every way a file can be broken (wrong magic, unknown version, absurd counts, strings or tensors running past the end,
misaligned offsets, sizes that do not match the tensor type) becomes one `BadModelFile` with a clear message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camelid.errors import BadModelFile, UnsupportedModel
from camelid.gguf import header_cache

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_COUNT = 1 << 24  # sanity bound on tensor/kv/array counts: far above any real model

# GGUF value types -> (struct format, size); 8 = string, 9 = array are handled apart.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_NUMPY_OF: dict[int, str] = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4",
                             7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file. `shape` is in torch order (outermost first): the reverse of ggml's `ne`."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # absolute byte offset in the file
    n_bytes: int
    data: np.ndarray  # uint8 view of the raw bytes, read-only, backed by the memory map

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


# (block size, bytes per block) of the usual types, so that opening a file needs no `gguf` import (~45 ms of a
# cold start); the gguf package's table answers for the others (tests/gguf checks this table against it).
COMMON_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 10: (256, 84),
    11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2)}


def _type_sizes(ggml_type: int) -> tuple[int, int]:
    """(block_size, type_size) of a ggml type."""
    if ggml_type in COMMON_TYPE_SIZES:
        return COMMON_TYPE_SIZES[ggml_type]
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise UnsupportedModel(f"tensor type {ggml_type} is not a known ggml type") from None


_U64 = struct.Struct("<Q")


class _Cursor:
    """Bounds-checked sequential reads over the mapped bytes."""

    def __init__(self, buf: np.ndarray, path: str) -> None:
        self.buf, self.mv, self.pos, self.path = buf, memoryview(buf), 0, path

    def fail(self, what: str) -> BadModelFile:
        return BadModelFile(f"{self.path}: not a valid GGUF file ({what} at byte {self.pos})")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"truncated while reading {what}")

    def scalar(self, vtype: int, what: str) -> Any:
        fmt, size = _SCALARS[vtype]
        self.need(size, what)
        (value,) = struct.unpack_from(fmt, self.mv, self.pos)
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return self.scalar(4, what)

    def u64(self, what: str) -> int:
        return self.scalar(10, what)

    def string(self, what: str) -> str:
        n = self.u64(what)
        self.need(n, what)
        raw = bytes(self.mv[self.pos:self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def strings(self, count: int, what: str) -> list[str]:
        """`count` strings in a row: the vocabulary of a model, so one tight loop (5x faster than `string`)."""
        out: list[str] = []
        mv, pos, end = self.mv, self.pos, len(self.buf)
        unpack = _U64.unpack_from
        for _ in range(count):
            if pos + 8 > end:
                self.pos = pos
                raise self.fail(f"truncated while reading {what}")
            (n,) = unpack(mv, pos)
            pos += 8
            if pos + n > end:
                self.pos = pos
                raise self.fail(f"truncated while reading {what}")
            out.append(str(mv[pos:pos + n], "utf-8", "replace"))
            pos += n
        self.pos = pos
        return out

    def value(self, vtype: int, what: str) -> Any:
        if vtype in _SCALARS:
            return self.scalar(vtype, what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY:
            etype, count = self.u32(what), self.u64(what)
            if count > MAX_COUNT * 4:
                raise self.fail(f"array {what} claims {count} elements")
            if etype in _NUMPY_OF:  # numeric arrays: one vectorized read
                dtype = np.dtype(_NUMPY_OF[etype])
                self.need(count * dtype.itemsize, what)
                arr = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
                self.pos += count * dtype.itemsize
                return [bool(v) for v in arr] if etype == 7 else arr.tolist()
            if etype == _STRING:
                return self.strings(count, what)
            if etype == _ARRAY:
                return [self.value(etype, what) for _ in range(count)]
            raise self.fail(f"unknown array element type {etype} in {what}")
        raise self.fail(f"unknown value type {vtype} for {what}")


class GGUFFile:
    """A GGUF file opened on a read-only memory map.

    `metadata` maps each key to a plain Python value (arrays become lists); `tensors` maps names to `TensorInfo`
    whose `data` are zero-copy views into the map. Nothing is copied until a caller asks for it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise BadModelFile(f"{self.path}: no such file")
        size = self.path.stat().st_size
        if size < 24:
            raise BadModelFile(f"{self.path}: not a GGUF file (only {size} bytes)")
        self.size = size
        self.buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        cur = _Cursor(self.buf, str(self.path))
        if bytes(self.buf[:4]) != GGUF_MAGIC:
            raise BadModelFile(f"{self.path}: not a GGUF file (magic {bytes(self.buf[:4])!r}, expected b'GGUF')")
        cur.pos = 4
        self.version = cur.u32("version")
        if self.version not in SUPPORTED_VERSIONS:
            raise BadModelFile(f"{self.path}: GGUF version {self.version} is not supported (only 2 and 3)")
        n_tensors, n_kv = cur.u64("tensor count"), cur.u64("metadata count")
        if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
            raise BadModelFile(f"{self.path}: not a valid GGUF file (claims {n_tensors} tensors, {n_kv} keys)")
        cached = header_cache.load(self.path)
        if cached is not None:
            self.metadata, raw_infos, header_end = cached
        else:
            self.metadata, raw_infos = self._read_header(cur, n_tensors, n_kv)
            header_end = cur.pos
            header_cache.save(self.path, (self.metadata, raw_infos, header_end))
        alignment = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        if alignment <= 0 or alignment & (alignment - 1):
            raise BadModelFile(f"{self.path}: invalid general.alignment {alignment}")
        self.data_offset = -(-header_end // alignment) * alignment
        self.tensors: dict[str, TensorInfo] = {}
        for name, ne, ggml_type, rel in raw_infos:
            self.tensors[name] = self._tensor(name, ne, ggml_type, rel, alignment)

    @staticmethod
    def _read_header(cur: _Cursor, n_tensors: int, n_kv: int) -> tuple[dict[str, Any], list[tuple]]:
        """The metadata and the raw tensor infos (name, ne, type, relative offset), read in file order."""
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string("metadata key")
            vtype = cur.u32(f"type of {key}")
            metadata[key] = cur.value(vtype, key)
        raw_infos = []
        for _ in range(n_tensors):
            name = cur.string("tensor name")
            n_dims = cur.u32(f"dimensions of {name}")
            if n_dims > 4:
                raise cur.fail(f"tensor {name} has {n_dims} dimensions")
            ne = [cur.u64(f"shape of {name}") for _ in range(n_dims)]
            raw_infos.append((name, ne, cur.u32(f"type of {name}"), cur.u64(f"offset of {name}")))
        return metadata, raw_infos

    def _tensor(self, name: str, ne: list[int], ggml_type: int, rel: int, alignment: int) -> TensorInfo:
        if name in self.tensors:
            raise BadModelFile(f"{self.path}: tensor {name} appears twice")
        block_size, type_size = _type_sizes(ggml_type)
        n_elements = int(np.prod(ne, dtype=np.int64)) if ne else 1
        if any(d <= 0 for d in ne) or (ne and ne[0] % block_size):
            raise BadModelFile(f"{self.path}: tensor {name} has an invalid shape {ne} for its type")
        n_bytes = n_elements // block_size * type_size
        start = self.data_offset + rel
        if rel % alignment:
            raise BadModelFile(f"{self.path}: tensor {name} is misaligned (offset {rel})")
        if start + n_bytes > self.size:
            raise BadModelFile(
                f"{self.path}: file is truncated (tensor {name} needs bytes up to {start + n_bytes}, "
                f"file has {self.size})")
        data = self.buf[start:start + n_bytes]
        return TensorInfo(name, tuple(reversed(ne)), ggml_type, start, n_bytes, data)

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        if not isinstance(arch, str):
            raise BadModelFile(f"{self.path}: metadata has no general.architecture")
        return arch

    def get(self, key: str, default: Any = None) -> Any:
        """Metadata value by key, or `default`."""
        return self.metadata.get(key, default)

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, v{self.version}, {len(self.tensors)} tensors, {len(self.metadata)} keys)"
