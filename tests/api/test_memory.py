"""Acceptance check F: after camelid.load("smollm2:135m"), resident memory above the `import torch` baseline is at most
1.3 × the GGUF file size (the weights stay quantized and mapped, not copied)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, os, resource
def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
import torch
base = rss()
import camelid
llm = camelid.load("smollm2:135m")
after_load = rss()
text = llm.generate("The capital of France is", num_predict=8, temperature=0).result()
after_generate = rss()
print(json.dumps({"base": base, "load": after_load, "generate": after_generate,
                  "file": os.path.getsize(llm.path), "text": text}))
"""


@pytest.mark.slow
def test_resident_memory_after_load() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = (figures["load"] - figures["base"]) / figures["file"]
    gen_ratio = (figures["generate"] - figures["base"]) / figures["file"]
    print(f"\nRSS above torch baseline: {ratio:.2f} x file after load, {gen_ratio:.2f} x after 8 tokens")
    assert figures["text"].strip()
    assert ratio <= 1.3
