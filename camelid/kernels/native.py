"""Native kernels in plain C (camelid/kernels/csrc), compiled once per machine and called through ctypes.

They reproduce ggml's CPU arithmetic operation for operation, so their results are bit-identical to llama.cpp's
(measured on llama.cpp's own intermediate tensors), and they are independent of the batch shape: every output is
one dot product computed the same way whatever else is in the batch. The library is built with the system C
compiler into camelid's data folder the first time it is needed; without a compiler or without AVX2/FMA/F16C, or
with `CAMELID_NATIVE=0`, the torch reference path is used instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

import torch
from gguf.constants import GGMLQuantizationType as T

from camelid import config
from camelid.kernels import numerics
from camelid.kernels.reference import reference_matmul

log = logging.getLogger("camelid")
SOURCES = sorted((Path(__file__).parent / "csrc").glob("*.c"))
FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC"]
Q8_1_BLOCK_BYTES = 36

_library: ctypes.CDLL | None = None
_tried = False


def _build() -> Path | None:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES) + " ".join(FLAGS).encode()).hexdigest()[:16]
    target = config.home_dir() / "kernels" / f"camelid_kernels_{digest}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    result = subprocess.run([compiler, *FLAGS, *map(str, SOURCES), "-o", str(partial), "-lm"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log.warning("native kernels not built (%s); using the torch path", result.stderr.strip()[:200])
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
        path = _build()
        if path is None:
            return None
        lib = ctypes.CDLL(str(path))
        if not lib.camelid_has_avx2():
            return None
    except OSError as err:
        log.warning("native kernels unavailable (%s); using the torch path", err)
        return None
    lib.camelid_matmul_q4_1.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
    _library = lib
    return lib


def matmul_q4_1(x: torch.Tensor, weight: torch.Tensor, ggml_type: int, n_out: int, n_in: int) -> torch.Tensor:
    """x [..., n_in] @ W.T for a Q4_1 weight, bit-exact with llama.cpp; the reference path in float32 numerics."""
    lib = library()
    if lib is None or not numerics.GGML_NUMERICS or n_in % 32:
        return reference_matmul(x, weight, ggml_type, n_out, n_in)
    rows = x.reshape(-1, n_in).to(torch.float32).contiguous()
    out = torch.empty(rows.shape[0], n_out, dtype=torch.float32)
    scratch = torch.empty(rows.shape[0] * (n_in // 32) * Q8_1_BLOCK_BYTES, dtype=torch.uint8)
    lib.camelid_matmul_q4_1(rows.data_ptr(), weight.data_ptr(), out.data_ptr(), rows.shape[0], n_in, n_out,
                            scratch.data_ptr(), 0)
    return out.reshape(*x.shape[:-1], n_out)


def register() -> None:
    """Install the native kernels in the kernel table (they fall back by themselves where they cannot run)."""
    from camelid.kernels.table import register_matmul

    register_matmul(T.Q4_1, matmul_q4_1)
