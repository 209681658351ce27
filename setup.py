"""Builds the native kernels as part of the package (an optional extension: without a C compiler the install
still succeeds, and camelid compiles them on first use or falls back to torch). Metadata is in pyproject.toml."""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("camelid_kernel_build", ROOT / "camelid" / "kernels" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

native = Extension(
    "camelid.kernels._native",
    sources=[str(path.relative_to(ROOT)) for path in build.sources()],
    include_dirs=[str(build.SOURCE_DIR.relative_to(ROOT))],
    extra_compile_args=[*build.COMPILE_FLAGS, build.digest_define()],
    extra_link_args=build.LINK_FLAGS,
    optional=True,
)

setup(ext_modules=[native])
