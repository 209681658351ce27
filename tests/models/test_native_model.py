"""The torch-free native model (camelid.models.native_model) and the quick path built on it (camelid.quick):
bit-identical logits and identical generations to the torch model, and no torch import on a one-shot run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import gguf
import numpy as np
import pytest

import camelid
from camelid.engine.generate import Engine
from camelid.gguf import GGUFFile
from camelid.kernels import library
from camelid.loader import load_gguf
from camelid.models import native_model
from camelid.models.native_model import NativeModel
from camelid.quick import QuickLLM, load_fast

pytestmark = pytest.mark.skipif(library.library() is None, reason="no native kernels on this machine")


@pytest.fixture(autouse=True)
def plain_float32_numerics() -> Iterator[None]:
    """Overrides the package's float32 fixture: here both paths compute with ggml's numerics."""
    yield


def torch_logits_by_chunks(path: Path, n_ctx: int, ids: list[int], chunks: list[int]) -> list[np.ndarray]:
    """The torch engine's last-position logits after each chunk of `ids` (sizes `chunks`), fed in order."""
    model, _, _ = load_gguf(GGUFFile(path))
    engine = Engine(model, None, n_ctx)
    out, start = [], 0
    for size in chunks:
        logits = engine.forward(0, ids[start:start + size], start, all_logits=False)
        out.append(logits[-1].numpy().copy())
        start += size
    return out


def native_logits_by_chunks(model: NativeModel, ids: list[int], chunks: list[int]) -> list[np.ndarray]:
    out, start = [], 0
    for size in chunks:
        out.append(model.forward(ids[start:start + size], start).copy())
        start += size
    return out


def test_smollm2_logits_are_bit_identical_to_the_torch_model(smollm2_path: Path) -> None:
    model = NativeModel.create(GGUFFile(smollm2_path), 256)
    assert model is not None
    ids = camelid.load(str(smollm2_path)).tokenize("The quick brown fox jumps over the lazy dog, and then it runs "
                                                   "away to the")
    chunks = [7, len(ids) - 10, 1, 1, 1]  # a prompt in two chunks, then one token at a time
    for native, reference in zip(native_logits_by_chunks(model, ids, chunks),
                                 torch_logits_by_chunks(smollm2_path, 256, ids, chunks), strict=True):
        assert np.array_equal(native, reference)


def test_gemma3_logits_are_bit_identical_to_the_torch_model(gemma3_path: Path) -> None:
    """Scaled Q8_0 embeddings, QK and sandwich norms, GELU, local layers with their own RoPE, Q4_K/Q6_K/Q5_0/Q8_0
    projections and the tied Q8_0 output: the torch model's logits to the bit."""
    model = NativeModel.create(GGUFFile(gemma3_path), 256)
    assert model is not None and model.local.count(False) == 3  # every 6th of the 18 layers is global
    ids = camelid.load(str(gemma3_path)).tokenize("The quick brown fox jumps over the lazy dog, and then it runs "
                                                  "away to the forest where many other animals live together in the shade of old trees")
    chunks = [5, len(ids) - 8, 1, 1, 1]  # the second chunk has more than 16 tokens: the batched kernels run
    assert chunks[1] > 16
    for native, reference in zip(native_logits_by_chunks(model, ids, chunks),
                                 torch_logits_by_chunks(gemma3_path, 256, ids, chunks), strict=True):
        assert np.array_equal(native, reference)


# untied output / tied with rope_freqs factors / gemma3 with a sliding window of 8 and linear RoPE scaling on its
# global layer; chunks of fewer and of more than 16 tokens, 34 tokens in all (past gemma3's window)
@pytest.mark.parametrize("name", ["llama", "llama3_rope", "gemma3"])
def test_tiny_models_logits_are_bit_identical(name: str, tmp_path: Path, write_tiny_gguf: Callable) -> None:
    path = write_tiny_gguf(name, tmp_path / f"{name}.gguf", quantize=gguf.GGMLQuantizationType.Q8_0)
    model = NativeModel.create(GGUFFile(path), 64)
    assert model is not None
    ids = np.random.default_rng(3).integers(0, model.config.vocab_size, 34).tolist()
    chunks = [12, 1, 18, 1, 1, 1]
    for native, reference in zip(native_logits_by_chunks(model, ids, chunks),
                                 torch_logits_by_chunks(path, 64, ids, chunks), strict=True):
        assert np.array_equal(native, reference)


def test_tiny_gemma3_has_local_and_global_layers(tmp_path: Path, write_tiny_gguf: Callable) -> None:
    path = write_tiny_gguf("gemma3", tmp_path / "gemma3.gguf", quantize=gguf.GGMLQuantizationType.Q8_0)
    model = NativeModel.create(GGUFFile(path), 64)
    assert model is not None
    assert model.local == [True] * 5 + [False]
    assert [spec.window for spec in model.specs] == [8] * 5 + [0]
    assert model.config.rope_freq_scale == 0.5  # the global layer's table differs from the local layers' twice over


def test_models_outside_the_native_path_are_refused(tmp_path: Path, write_tiny_gguf: Callable,
                                                    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    q8 = gguf.GGMLQuantizationType.Q8_0
    qwen2 = write_tiny_gguf("qwen2", tmp_path / "qwen2.gguf", quantize=q8)  # another architecture (with biases)
    assert NativeModel.create(GGUFFile(qwen2), 64) is None
    phi3 = write_tiny_gguf("phi3", tmp_path / "phi3.gguf", quantize=q8)
    assert NativeModel.create(GGUFFile(phi3), 64) is None
    odd = GGUFFile(smollm2_path)
    odd.metadata["general.architecture"] = [0]  # not a name (a fuzzed file): refused, not a TypeError
    assert NativeModel.create(odd, 64) is None
    f32 = write_tiny_gguf("llama", tmp_path / "f32.gguf")  # F32 projections: no native kernel reads them
    assert NativeModel.create(GGUFFile(f32), 64) is None
    gemma_norms = write_tiny_gguf("gemma3", tmp_path / "norms.gguf", arch="llama", quantize=q8)
    assert NativeModel.create(GGUFFile(gemma_norms), 64) is None  # llama has no QK or sandwich norms
    no_norm = write_tiny_gguf("gemma3", tmp_path / "no_norm.gguf", drop=("blk.3.post_ffw_norm.weight",),
                              quantize=q8)
    assert NativeModel.create(GGUFFile(no_norm), 64) is None
    assert isinstance(load_fast(str(smollm2_path)), QuickLLM)
    with monkeypatch.context() as patch:  # an architecture the native path refuses: load_fast loads the torch model
        patch.delitem(native_model.ARCHITECTURES, "llama")
        assert isinstance(load_fast(str(smollm2_path)), camelid.LLM)
    monkeypatch.setenv("CAMELID_QUICK", "0")
    assert isinstance(load_fast(str(smollm2_path)), camelid.LLM)


@pytest.mark.parametrize("options", [{"temperature": 0.0}, {"seed": 11}, {"seed": 5, "temperature": 1.2,
                                                                            "repeat_penalty": 1.3}])
def test_quick_chat_generates_the_torch_models_tokens(smollm2_path: Path, options: dict) -> None:
    messages = [{"role": "user", "content": "Name three colours of the rainbow."}]
    quick = load_fast(str(smollm2_path), num_predict=24, num_ctx=512)
    full = camelid.load(str(smollm2_path), num_predict=24, num_ctx=512)
    assert isinstance(quick, QuickLLM)
    a, b = quick.chat(messages, **options), full.chat(messages, **options)
    assert a.result() == b.result()
    assert a.tokens == b.tokens and len(a.tokens) > 0
    assert a.stats is not None and a.stats.eval_count == len(a.tokens)


@pytest.mark.parametrize("options", [{"temperature": 0.0}, {"seed": 7}])
def test_quick_gemma3_generates_the_torch_models_tokens(gemma3_path: Path, options: dict) -> None:
    messages = [{"role": "user", "content": "Write one sentence about the sea."}]
    quick = load_fast(str(gemma3_path), num_predict=24, num_ctx=512)
    full = camelid.load(str(gemma3_path), num_predict=24, num_ctx=512)
    assert isinstance(quick, QuickLLM)
    a, b = quick.chat(messages, **options), full.chat(messages, **options)
    assert a.result() == b.result()
    assert a.tokens == b.tokens and len(a.tokens) > 0


@pytest.mark.parametrize("model", ["smollm2_path", "gemma3_path"])
def test_one_shot_run_does_not_import_torch(model: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(model)
    code = ("import sys\nfrom camelid.cli.main import main\ncode = main(['run', '--local', sys.argv[1], 'hi', "
            "'--num-predict', '8'])\nprint('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
            "sys.exit(code)\n")
    env = dict(os.environ, CAMELID_HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                            env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "torch imported: False" in result.stderr


def test_quick_chat_reuses_the_previous_turn(smollm2_path: Path) -> None:
    """A chat's next turn prefills only what is new, and answers as the torch engine (which reuses too)."""
    quick = load_fast(str(smollm2_path), num_predict=12, num_ctx=512, temperature=0.0)
    full = camelid.load(str(smollm2_path), num_predict=12, num_ctx=512, temperature=0.0)
    assert isinstance(quick, QuickLLM)
    messages = [{"role": "user", "content": "Say a colour."}]
    first = quick.chat(messages).result()
    assert first == full.chat(messages).result()
    sizes: list[int] = []
    forward = quick.engine.model.forward
    quick.engine.model.forward = lambda ids, start: (sizes.append(len(ids)), forward(ids, start))[1]
    follow = [*messages, {"role": "assistant", "content": first}, {"role": "user", "content": "And another one?"}]
    answer = quick.chat(follow)
    assert answer.result() == full.chat(follow).result()
    assert sizes[0] < len(quick.chat_ids(follow)) / 2  # the first turn's tokens were not computed again
