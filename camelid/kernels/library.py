"""The native kernel library (camelid/kernels/csrc), found or built and loaded through ctypes — no torch here, so
that a torch-free path (camelid.quick: a cold `camelid run`) can call the same kernels as the torch model.

The package build compiles it (setup.py, an optional extension); failing that it is compiled with the system C
compiler into camelid's data folder the first time it is needed. Without a compiler or without AVX2/FMA/F16C, or
with `CAMELID_NATIVE=0`, `library()` is None.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
from pathlib import Path

from camelid import config
from camelid.kernels import build

log = logging.getLogger("camelid")
_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
SIGNATURES = {
    "camelid_matmul": [_ptr, _i64, _i64, ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _i64, _ptr],
    "camelid_matmul_scratch": [_i64, _i64],
    "camelid_swiglu": [_ptr, _ptr, _ptr, _i64, _i64],
    "camelid_geglu": [_ptr, _ptr, _ptr, _i64, _i64],
    "camelid_attention_f16": [_ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _i64, _i64, _i64, _i64,
                              _i64, ctypes.c_float, ctypes.c_int, _ptr, _ptr, _ptr],
    "camelid_rmsnorm": [_ptr, _ptr, _ptr, _i64, _i64, ctypes.c_float],
    "camelid_block_scratch": [_ptr, _i64],
    "camelid_blocks_forward": [_ptr, ctypes.c_int, _ptr, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _ptr],
    "camelid_rope_apply": [_ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, ctypes.c_int],
    "camelid_set_threads": [ctypes.c_int],
    "camelid_top_k": [_ptr, _i64, _i64, _ptr, _ptr],
    "camelid_rope_tables": [_ptr, _i64, ctypes.c_int, ctypes.c_float, ctypes.c_float, _ptr, ctypes.c_float,
                            ctypes.c_float, ctypes.c_int, ctypes.c_float, ctypes.c_float, _ptr, _ptr],
}

# the weight formats the kernels read: Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K (ggml type numbers: no gguf import here)
NATIVE_TYPES = (2, 3, 6, 8, 12, 14)
_library: ctypes.CDLL | None = None
_tried = False


def _packaged() -> Path | None:
    """The library the package build made (setup.py), when it was built from these very sources."""
    for path in sorted(Path(__file__).parent.glob("_native*.so")):
        try:
            lib = ctypes.CDLL(str(path))
            lib.camelid_digest.restype = ctypes.c_char_p
            if lib.camelid_digest().decode() == build.digest():
                return path
        except (OSError, AttributeError):
            continue
    return None


def _build() -> Path | None:
    """The library compiled on first use into camelid's data folder (kept per source digest)."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    target = config.home_dir() / "kernels" / f"camelid_kernels_{build.digest()}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    command = [compiler, *build.COMPILE_FLAGS, build.digest_define(), "-shared", "-fPIC", f"-I{build.SOURCE_DIR}",
               *map(str, build.sources()), "-o", str(partial), *build.LINK_FLAGS]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log.warning("native kernels not built (%s); using the torch path", result.stderr.strip()[:300])
        return None
    os.replace(partial, target)
    return target


def library() -> ctypes.CDLL | None:
    """The loaded native library, or None when it cannot be used here."""
    global _library, _tried
    if _tried:
        return _library
    _tried = True
    if os.environ.get("CAMELID_NATIVE", "1") == "0":
        return None
    try:
        path = _packaged() or _build()
        if path is None:
            return None
        lib = ctypes.CDLL(str(path))
        if not lib.camelid_has_avx2():
            return None
        for name, argtypes in SIGNATURES.items():
            getattr(lib, name).argtypes = argtypes
    except (OSError, AttributeError) as err:
        log.warning("native kernels unavailable (%s); using the torch path", err)
        return None
    lib.camelid_set_threads(config.default_threads())
    _library = lib
    return lib



def set_threads(n: int) -> None:
    """Threads for the native kernels (OpenMP)."""
    lib = library()
    if lib is not None and n > 0:
        lib.camelid_set_threads(n)


class BlockSpec(ctypes.Structure):
    """camelid_block (csrc/block.c): one transformer layer's shapes, flags, norm weights and quantized weights."""

    _fields_ = [(name, ctypes.c_int64) for name in ("n_embd", "n_head", "n_head_kv", "head_dim_k", "head_dim_v",
                                                     "n_ff", "n_rot", "n_ctx", "window")] + [
        ("eps", ctypes.c_float), ("scale", ctypes.c_float), ("scale_queries_first", ctypes.c_int),
        ("neox", ctypes.c_int), ("gelu", ctypes.c_int)] + [
        (name, ctypes.c_void_p) for name in ("attn_norm", "q_norm", "k_norm", "post_attn_norm", "ffn_norm",
                                             "post_ffw_norm")] + [
        ("weights", ctypes.c_void_p * 7), ("types", ctypes.c_int * 7), ("k_cache", ctypes.c_void_p),
        ("v_cache", ctypes.c_void_p)]
