"""How the native kernels are compiled: shared by the package build (setup.py, an optional extension) and the
first-use build (camelid.kernels.native) — no torch here, setup.py loads this file on its own.

Both stamp the library with a digest of the sources and flags, so that a library built from other sources (an
editable install whose C files changed since) is recognised and not used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SOURCE_DIR = Path(__file__).parent / "csrc"
# -ffp-contract=off: no multiply-add is fused unless the source says fmaf (the kernels reproduce ggml's rounding);
# AVX2/FMA/F16C is the baseline, AVX-512 VNNI variants are selected per function at run time.
COMPILE_FLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-ffp-contract=off"]
LINK_FLAGS = ["-fopenmp", "-lm"]


def sources() -> list[Path]:
    return sorted(SOURCE_DIR.glob("*.c"))


def digest() -> str:
    """16 hex digits identifying the sources, headers and flags."""
    inputs = sorted(SOURCE_DIR.glob("*.[ch]"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in inputs) + " ".join(COMPILE_FLAGS).encode()).hexdigest()[:16]


def digest_define() -> str:
    return f'-DCAMELID_DIGEST="{digest()}"'
