"""Whisper model, CTranslate2 loader and tokenizer.

Fast tests use a tiny model.bin written here with random weights. The tiny.en tests (marked slow) compare
against CTranslate2 itself and faster-whisper's tokenizer (test-only oracles) on a sentence spoken by
Festival.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from camelid.errors import BadModelFile, BadRequest, UnknownModel, UnsupportedModel
from camelid.speech.loaders.ct2 import load_whisper, read_model_bin, read_whisper
from camelid.speech.model import ModelDimensions, Whisper, linear, sinusoids
from camelid.speech.tokenizer import LANGUAGES, WhisperTokenizer

TINY = ModelDimensions(n_mels=4, n_audio_ctx=6, n_audio_state=8, n_audio_head=2, n_audio_layer=2, n_vocab=20,
                       n_text_ctx=10, n_text_state=8, n_text_head=2, n_text_layer=2)
TINY_EN = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
                          n_vocab=51864, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)
SENTENCE = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
DTYPE_IDS = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
             np.dtype("float16"): 4}


# --- a CTranslate2 writer (the format of model_spec.py), for files made by the tests ------------------------

def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_model_bin(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str] | None = None,
                    version: int = 6, spec: str = "WhisperSpec") -> Path:
    out = bytearray(struct.pack("<I", version))
    if version >= 2:
        out += _string(spec) + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name in sorted(variables):
        value = np.ascontiguousarray(variables[name])
        out += _string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        if version >= 4:
            out += struct.pack("<BI", DTYPE_IDS[value.dtype], value.nbytes)
        else:
            out += struct.pack("<BI", value.itemsize, value.size)
        out += value.tobytes()
    if version >= 3:
        aliases = aliases or {}
        out += struct.pack("<I", len(aliases))
        for alias, target in aliases.items():
            out += _string(alias) + _string(target)
    path.write_bytes(bytes(out))
    return path


def random_state_dict(dims: ModelDimensions, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(value.shape, generator=generator) * 0.5
            for key, value in Whisper(dims).state_dict().items()}


def to_ct2(state: dict[str, torch.Tensor], dims: ModelDimensions, seed: int = 1) -> dict[str, np.ndarray]:
    """openai/whisper tensors in CTranslate2's names and fused layouts (with a random key bias, which
    CTranslate2 stores and openai/whisper does not have)."""
    rng = np.random.default_rng(seed)
    sd = {key: value.numpy() for key, value in state.items()}
    out: dict[str, np.ndarray] = {}

    def linear(name: str, key: str) -> None:
        out[f"{name}/weight"], out[f"{name}/bias"] = sd[f"{key}.weight"], sd[f"{key}.bias"]

    def norm(name: str, key: str) -> None:
        out[f"{name}/gamma"], out[f"{name}/beta"] = sd[f"{key}.weight"], sd[f"{key}.bias"]

    def fused(name: str, key: str, roles: tuple[str, ...]) -> None:
        out[f"{name}/weight"] = np.concatenate([sd[f"{key}.{role}.weight"] for role in roles])
        out[f"{name}/bias"] = np.concatenate([sd[f"{key}.{role}.bias"] if role != "key"
                                              else rng.standard_normal(dims.n_text_state).astype(np.float32)
                                              for role in roles])

    def block(name: str, key: str, cross: bool) -> None:
        fused(f"{name}/self_attention/linear_0", f"{key}.attn", ("query", "key", "value"))
        linear(f"{name}/self_attention/linear_1", f"{key}.attn.out")
        norm(f"{name}/self_attention/layer_norm", f"{key}.attn_ln")
        if cross:
            linear(f"{name}/attention/linear_0", f"{key}.cross_attn.query")
            fused(f"{name}/attention/linear_1", f"{key}.cross_attn", ("key", "value"))
            linear(f"{name}/attention/linear_2", f"{key}.cross_attn.out")
            norm(f"{name}/attention/layer_norm", f"{key}.cross_attn_ln")
        linear(f"{name}/ffn/linear_0", f"{key}.mlp.0")
        linear(f"{name}/ffn/linear_1", f"{key}.mlp.2")
        norm(f"{name}/ffn/layer_norm", f"{key}.mlp_ln")

    linear("encoder/conv1", "encoder.conv1")
    linear("encoder/conv2", "encoder.conv2")
    out["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    for layer in range(dims.n_audio_layer):
        block(f"encoder/layer_{layer}", f"encoder.blocks.{layer}", cross=False)
    norm("encoder/layer_norm", "encoder.ln_post")
    out["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    out["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    for layer in range(dims.n_text_layer):
        block(f"decoder/layer_{layer}", f"decoder.blocks.{layer}", cross=True)
    norm("decoder/layer_norm", "decoder.ln")
    out["encoder/num_heads"] = np.array(dims.n_audio_head, dtype=np.int16)
    out["decoder/num_heads"] = np.array(dims.n_text_head, dtype=np.int16)
    out["decoder/activation"] = np.array(3, dtype=np.int8)
    return out


def quantize_int8(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CTranslate2's int8: each matrix named *weight as int8, plus a per-row float32 `_scale` (q = w * s)."""
    out = dict(variables)
    for name, value in variables.items():
        if name.endswith("weight") and value.ndim >= 2:
            rows = value.reshape(value.shape[0], -1)
            scale = (127.0 / np.abs(rows).max(axis=1)).astype(np.float32)
            out[name] = np.round(rows * scale[:, None]).astype(np.int8).reshape(value.shape)
            out[name + "_scale"] = scale
    return out


ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return random_state_dict(TINY)


@pytest.fixture(scope="module")
def tiny_model(tiny_state) -> Whisper:
    model = Whisper(TINY)
    model.load_state_dict(tiny_state)
    return model.eval()


def _ct2_folder(folder: Path, variables: dict[str, np.ndarray], **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_model_bin(folder / "model.bin", variables, ALIASES, **kwargs)
    return folder


# --- the loader on files written here -----------------------------------------------------------------------

@pytest.mark.parametrize("version", [6, 4, 3])
def test_float32_round_trip_every_tensor(tmp_path, tiny_state, version):
    folder = _ct2_folder(tmp_path, to_ct2(tiny_state, TINY), version=version)
    state, dims, config = read_whisper(folder)
    assert dims == TINY and config == {}
    assert set(state) == set(tiny_state)
    for key, value in tiny_state.items():
        assert state[key].dtype == torch.float32 and torch.equal(state[key], value), key


def test_float16_is_upcast(tmp_path, tiny_state):
    variables = {name: value.astype(np.float16) if value.dtype == np.float32 else value
                 for name, value in to_ct2(tiny_state, TINY).items()}
    state, _, _ = read_whisper(_ct2_folder(tmp_path, variables))
    for key, value in tiny_state.items():
        assert state[key].dtype == torch.float32
        assert torch.equal(state[key], value.half().float()), key


def test_int8_weights_are_dequantized_with_their_row_scales(tmp_path, tiny_state):
    variables = quantize_int8(to_ct2(tiny_state, TINY))
    assert variables["decoder/embeddings/weight"].dtype == np.int8
    parsed = read_model_bin(write_model_bin(tmp_path / "model.bin", variables, ALIASES))
    # the alias and its scale resolve to the embedding's
    assert parsed.get("decoder/projection/weight") is parsed.variables["decoder/embeddings/weight"]
    embedding_scale = parsed.variables["decoder/embeddings/weight_scale"]
    assert parsed.get("decoder/projection/weight_scale") is embedding_scale
    state, _, _ = read_whisper(tmp_path)
    q = variables["encoder/layer_1/ffn/linear_0/weight"]
    scale = variables["encoder/layer_1/ffn/linear_0/weight_scale"]
    assert torch.equal(state["encoder.blocks.1.mlp.0.weight"],
                       torch.from_numpy(q.astype(np.float32) / scale[:, None]))
    conv_q, conv_scale = variables["encoder/conv1/weight"], variables["encoder/conv1/weight_scale"]
    assert torch.equal(state["encoder.conv1.weight"],
                       torch.from_numpy(conv_q.astype(np.float32) / conv_scale[:, None, None]))
    for key, value in tiny_state.items():  # within half a quantization step of the float weights
        if value.ndim >= 2:
            step = value.abs().reshape(value.shape[0], -1).amax(dim=1) / 127
            error = (state[key] - value).abs().reshape(value.shape[0], -1).amax(dim=1)
            assert error.le(step * 0.5001).all(), key
    model, _ = load_whisper(tmp_path)
    mel = torch.randn(1, TINY.n_mels, 2 * TINY.n_audio_ctx)
    assert model(mel, torch.tensor([[1, 2, 3]])).isfinite().all()


def test_key_bias_is_dropped_without_changing_the_output(tmp_path, tiny_state, tiny_model):
    """CTranslate2 stores a key bias that openai/whisper lacks; it shifts all scores of a query alike."""
    model, _ = load_whisper(_ct2_folder(tmp_path, to_ct2(tiny_state, TINY)))
    mel, tokens = torch.randn(2, TINY.n_mels, 2 * TINY.n_audio_ctx), torch.tensor([[1, 2, 3], [4, 5, 6]])
    torch.testing.assert_close(model(mel, tokens), tiny_model(mel, tokens), rtol=0, atol=1e-5)


def test_accepts_a_folder_a_model_bin_a_file_mapping_and_a_resolved_model(tmp_path, tiny_state):
    folder = _ct2_folder(tmp_path / "m", to_ct2(tiny_state, TINY))
    (folder / "config.json").write_text('{"suppress_ids": [1, 2], "alignment_heads": [[1, 0], [1, 1]]}')
    files = {"model.bin": folder / "model.bin", "config.json": folder / "config.json"}

    class Resolved:  # what camelid.store.resolve returns
        pass

    resolved = Resolved()
    resolved.files = files  # type: ignore[attr-defined]
    for source in (folder, str(folder / "model.bin"), files, resolved):
        model, config = load_whisper(source)
        assert config["suppress_ids"] == [1, 2]
        assert model.alignment_heads.tolist() == [[False, False], [True, True]]


# --- corrupt files ------------------------------------------------------------------------------------------

def test_truncated_model_bin_at_every_boundary(tmp_path, tiny_state):
    raw = write_model_bin(tmp_path / "full.bin", to_ct2(tiny_state, TINY), ALIASES).read_bytes()
    cuts = sorted({0, 2, 4, 7, 20, 50, 51, 200, len(raw) // 2, len(raw) - 30, len(raw) - 1})
    for cut in cuts:
        (tmp_path / "model.bin").write_bytes(raw[:cut])
        with pytest.raises(BadModelFile, match="truncated") as err:
            read_whisper(tmp_path)
        assert "model.bin" in str(err.value) and "\n" not in str(err.value)


def test_unknown_version_missing_tensor_and_other_corruption(tmp_path, tiny_state):
    variables = to_ct2(tiny_state, TINY)
    _ct2_folder(tmp_path, variables, version=7)
    with pytest.raises(BadModelFile, match="binary version 7"):
        read_whisper(tmp_path)
    (tmp_path / "model.bin").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(BadModelFile, match="binary version"):
        read_whisper(tmp_path)
    _ct2_folder(tmp_path, {k: v for k, v in variables.items() if k != "decoder/layer_1/ffn/linear_0/bias"})
    with pytest.raises(BadModelFile, match=r"1 tensors are missing \(decoder/layer_1/ffn/linear_0/bias\)"):
        read_whisper(tmp_path)
    no_scale = quantize_int8(variables)
    del no_scale["encoder/conv2/weight_scale"]
    _ct2_folder(tmp_path, no_scale)
    with pytest.raises(BadModelFile, match="encoder/conv2/weight_scale"):
        read_whisper(tmp_path)
    narrow = variables["decoder/position_encodings/encodings"][:, :4]
    _ct2_folder(tmp_path, {**variables, "decoder/position_encodings/encodings": narrow})
    with pytest.raises(BadModelFile, match=r"decoder.positional_embedding has shape \[10, 4\], expected"):
        read_whisper(tmp_path)
    _ct2_folder(tmp_path, variables, spec="TransformerSpec")
    with pytest.raises(UnsupportedModel, match="TransformerSpec"):
        read_whisper(tmp_path)
    (tmp_path / "model.bin").unlink()
    with pytest.raises(BadModelFile, match="no model.bin"):
        read_whisper(tmp_path)
    with pytest.raises(UnknownModel):
        read_whisper(tmp_path / "nowhere")


# --- the model ----------------------------------------------------------------------------------------------

def _decode_stepwise(model: Whisper, tokens: torch.Tensor, audio: torch.Tensor,
                     first: int = 2) -> torch.Tensor:
    cache = model.new_cache(tokens.shape[0])
    steps = [model.logits(tokens[:, :first], audio, cache)]
    steps += [model.logits(tokens[:, i:i + 1], None, cache) for i in range(first, tokens.shape[1])]
    assert cache.position == tokens.shape[1]
    return torch.cat(steps, dim=1)


def test_cached_decoding_equals_a_full_pass_and_rows_are_independent(tiny_model):
    torch.manual_seed(0)
    audio = tiny_model.embed_audio(torch.randn(2, TINY.n_mels, 2 * TINY.n_audio_ctx))
    assert audio.shape == (2, TINY.n_audio_ctx, TINY.n_audio_state)
    tokens = torch.randint(0, TINY.n_vocab, (2, 7))
    full = tiny_model.logits(tokens, audio)
    assert full.shape == (2, 7, TINY.n_vocab)
    torch.testing.assert_close(_decode_stepwise(tiny_model, tokens, audio), full, rtol=0, atol=1e-5)
    alone = tiny_model.logits(tokens[1:], audio[1:])
    torch.testing.assert_close(full[1:], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [0, 0, 2, 3], [1, 0, 3, 2], [3, 3, 3, 0], [2, 3, 0, 1]])
def test_reorder_gives_each_row_its_source_history(tiny_model, order):
    """Rows that keep their own history are left alone; the others get a copy of their source row's."""
    torch.manual_seed(5)
    cache = tiny_model.new_cache(4)
    for buffer in cache.self_keys + cache.self_values:
        buffer.copy_(torch.randn_like(buffer))
    cache.position = 6
    before = [buffer.clone() for buffer in cache.self_keys + cache.self_values]
    cache.reorder(order)
    for old, new in zip(before, cache.self_keys + cache.self_values, strict=True):
        assert torch.equal(new[:, :, :6], old[order, :, :6])
        assert torch.equal(new[:, :, 6:], old[:, :, 6:])  # past the position: untouched


def test_rows_sharing_a_segment_match_repeated_audio_and_survive_reordering(tiny_model):
    torch.manual_seed(1)
    audio = tiny_model.embed_audio(torch.randn(2, TINY.n_mels, 2 * TINY.n_audio_ctx))
    tokens = torch.randint(0, TINY.n_vocab, (4, 6))  # rows 0,1 -> segment 0; rows 2,3 -> segment 1
    repeated = audio.repeat_interleave(2, dim=0)
    shared_cache, repeated_cache = tiny_model.new_cache(4), tiny_model.new_cache(4)
    shared = tiny_model.logits(tokens[:, :4], audio, shared_cache)
    assert shared_cache.rows_per_segment == 2 and shared_cache.cross_keys[0].shape[0] == 2
    torch.testing.assert_close(shared, tiny_model.logits(tokens[:, :4], repeated, repeated_cache),
                               rtol=0, atol=1e-5)

    def expected(order: list[int]) -> torch.Tensor:
        history = torch.cat([tokens[order, :4], tokens[:, 4:5]], dim=1)
        return tiny_model.logits(history, repeated[order])[:, -1]

    within = [1, 1, 3, 2]  # beams stay with their segment: keys stay shared
    shared_cache.reorder(within)
    assert shared_cache.rows_per_segment == 2
    step = tiny_model.logits(tokens[:, 4:5], audio, shared_cache)[:, -1]
    torch.testing.assert_close(step, expected(within), rtol=0, atol=1e-5)
    across = [2, 0, 1, 3]  # rows change segment: keys are gathered per row
    shared_cache.reorder(across)
    assert shared_cache.rows_per_segment == 1
    step = tiny_model.logits(tokens[:, 5:6], audio, shared_cache)[:, -1]
    history = torch.cat([tokens[within, :4], tokens[:, 4:5]], dim=1)[across]
    history = torch.cat([history, tokens[:, 5:6]], dim=1)
    reference = tiny_model.logits(history, repeated[within][across])[:, -1]
    torch.testing.assert_close(step, reference, rtol=0, atol=1e-5)
    shrink = [3, 0]  # fewer rows (finished beams dropped)
    shared_cache.reorder(shrink)
    assert shared_cache.batch == 2 and shared_cache.position == 6


def test_prepare_for_decoding_changes_nothing_but_the_layout(tiny_state):
    model = Whisper(TINY)
    model.load_state_dict(tiny_state)
    audio = model.embed_audio(torch.randn(2, TINY.n_mels, 2 * TINY.n_audio_ctx))
    tokens = torch.randint(0, TINY.n_vocab, (2, 5))
    before = model.logits(tokens, audio)
    weight = model.decoder.token_embedding.weight
    model.decoder.token_embedding.weight = torch.nn.Parameter(weight.t().contiguous().t())  # column-major
    model.prepare_for_decoding().prepare_for_decoding()
    assert model.decoder.token_embedding.weight.is_contiguous()
    key = "decoder.token_embedding.weight"
    assert torch.equal(model.state_dict()[key], tiny_state[key])
    torch.testing.assert_close(model.logits(tokens, audio), before, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (5, 1), (3, 4), (7,), (33,), (2, 20)])
def test_output_projection_equals_the_plain_product(tiny_model, shape):
    """`TextDecoder.project` computes (E @ h.T).T, a single row doubled: the same logits as h @ E.T."""
    torch.manual_seed(2)
    hidden = torch.randn(*shape, TINY.n_text_state)
    weight = tiny_model.decoder.token_embedding.weight
    logits = tiny_model.decoder.project(hidden)
    assert logits.shape == (*shape, TINY.n_vocab) and logits.is_contiguous()
    torch.testing.assert_close(logits, hidden @ weight.T, rtol=0, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 5, 32, 33])
@pytest.mark.parametrize("bias", [True, False])
def test_few_rows_linear_equals_nn_linear_and_keeps_hooks(rows, bias):
    torch.manual_seed(4)
    layer = torch.nn.Linear(24, 40, bias=bias)
    x = torch.randn(rows, 1, 24)
    out = linear(x, layer)
    assert out.shape == (rows, 1, 40) and out.is_contiguous()
    torch.testing.assert_close(out, layer(x), rtol=0, atol=1e-5)
    seen = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: seen.append(output))
    try:
        linear(x, layer)
    finally:
        handle.remove()
    assert len(seen) == 1  # a hooked layer still runs as a module (word timestamps rely on it)


def test_logits_of_chosen_positions_equal_those_of_every_position(tiny_model):
    torch.manual_seed(3)
    audio = tiny_model.embed_audio(torch.randn(2, TINY.n_mels, 2 * TINY.n_audio_ctx))
    tokens = torch.randint(0, TINY.n_vocab, (2, 6))
    full = tiny_model.logits(tokens, audio)
    for positions in ([5], [0, 5], [2, 2], [1, 3, 4]):
        cache = tiny_model.new_cache(2)
        chosen = tiny_model.logits(tokens, audio, cache, positions)
        assert chosen.shape == (2, len(positions), TINY.n_vocab) and cache.position == 6
        torch.testing.assert_close(chosen, full[:, positions], rtol=0, atol=1e-5)


def test_bad_shapes_and_overflow_are_clear_errors(tiny_model):
    with pytest.raises(BadRequest, match=r"\[batch, 4, 12\]"):
        tiny_model.embed_audio(torch.randn(1, 4, 11))
    audio = tiny_model.embed_audio(torch.randn(1, TINY.n_mels, 2 * TINY.n_audio_ctx))
    cache = tiny_model.new_cache(1)
    tiny_model.logits(torch.zeros(1, TINY.n_text_ctx, dtype=torch.long), audio, cache)
    with pytest.raises(BadRequest, match="at most 10 tokens"):
        tiny_model.logits(torch.zeros(1, 1, dtype=torch.long), audio, cache)
    with pytest.raises(BadRequest, match="needs the audio features"):
        tiny_model.logits(torch.zeros(1, 1, dtype=torch.long), None, tiny_model.new_cache(1))
    with pytest.raises(BadRequest, match="split evenly"):
        tiny_model.logits(torch.zeros(3, 1, dtype=torch.long), torch.cat([audio, audio]))


@pytest.mark.parametrize(("n_vocab", "multilingual", "languages"), [(51864, False, 99), (51865, True, 99),
                                                                      (51866, True, 100)])
def test_language_counts_follow_the_vocabulary(n_vocab, multilingual, languages):
    with torch.device("meta"):
        model = Whisper(ModelDimensions(**{**TINY_EN.__dict__, "n_vocab": n_vocab}))
    assert model.is_multilingual is multilingual and model.num_languages == languages


def test_sinusoids_match_openai_formula():
    table = sinusoids(1500, 384)
    half = torch.arange(192, dtype=torch.float64)
    inv = torch.exp(-np.log(10000) / 191 * half)
    angle = torch.arange(1500, dtype=torch.float64)[:, None] * inv[None, :]
    torch.testing.assert_close(table, torch.cat([angle.sin(), angle.cos()], dim=1).float(), rtol=0, atol=1e-4)


# --- tiny.en against CTranslate2 and faster-whisper ---------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_en_files() -> dict[str, Path]:
    from camelid.store import resolve

    return resolve("whisper:tiny.en").files


@pytest.fixture(scope="session")
def tiny_en(tiny_en_files):
    return load_whisper(tiny_en_files)


@pytest.fixture(scope="session")
def tokenizer(tiny_en_files) -> WhisperTokenizer:
    return WhisperTokenizer.from_files(tiny_en_files)


@pytest.fixture(scope="session")
def ct2_folder(tiny_en_files, tmp_path_factory) -> Path:
    """The store's blobs under their file names, as CTranslate2 wants a folder."""
    folder = tmp_path_factory.mktemp("tiny.en")
    for name, path in tiny_en_files.items():
        os.symlink(path, folder / name)
    return folder


def log_mel(audio: np.ndarray) -> np.ndarray:
    """openai/whisper's log-mel of the first 30 s: pad 30 s of zeros, STFT 400/160, Slaney mels, log10, clamp
    to max - 8, (x + 4) / 4 (faster-whisper's implementation with openai's padding)."""
    from faster_whisper import feature_extractor  # test-only oracle (faster-whisper)
    mel = feature_extractor.FeatureExtractor(feature_size=80)(audio, padding=16000 * 30)
    return mel[:, :3000].astype(np.float32)


@pytest.fixture(scope="session")
def speech_mel(tmp_path_factory) -> np.ndarray:
    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: apt-get install festival festvox-us-slt-hts")
    path = tmp_path_factory.mktemp("speech") / "clip.wav"
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-F", "16000", "-o", str(path)],
                   input=SENTENCE.encode(), check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as clip:
        assert clip.getframerate() == 16000 and clip.getnchannels() == 1 and clip.getsampwidth() == 2
        audio = np.frombuffer(clip.readframes(clip.getnframes()), np.int16).astype(np.float32) / 32768
    return log_mel(audio)[None]  # [1, 80, 3000]


@pytest.fixture(scope="session")
def ct2_model(ct2_folder):
    import ctranslate2  # test-only oracle (a dependency of faster-whisper)
    return ctranslate2.models.Whisper(str(ct2_folder), device="cpu", compute_type="float32", intra_threads=2)


@pytest.mark.slow
def test_tiny_en_state_dict_is_complete(tiny_en_files):
    state, dims, config = read_whisper(tiny_en_files)
    assert dims == TINY_EN
    with torch.device("meta"):
        expected = {key: value.shape for key, value in Whisper(dims).state_dict().items()}
    assert {key: value.shape for key, value in state.items()} == expected
    assert all(value.dtype == torch.float32 for value in state.values())
    torch.testing.assert_close(state["encoder.positional_embedding"], sinusoids(1500, 384), rtol=0, atol=1e-3)
    assert config["suppress_ids_begin"] == [220, 50256] and len(config["alignment_heads"]) == 8


@pytest.mark.slow
def test_tiny_en_matches_ctranslate2(tiny_en, ct2_model, speech_mel, tokenizer):
    import ctranslate2

    model, config = tiny_en
    assert not model.is_multilingual and model.num_languages == 99
    assert model.alignment_heads.nonzero().tolist() == config["alignment_heads"]
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(speech_mel))
    audio = model.embed_audio(torch.from_numpy(speech_mel))
    reference = np.array(ct2_model.encode(features))
    assert np.abs(audio.numpy() - reference).max() < 1e-2

    prompt = [tokenizer.sot, tokenizer.no_timestamps]
    result = ct2_model.generate(features, [prompt], beam_size=1, return_scores=False,
                                return_logits_vocab=True, suppress_blank=True,
                                suppress_tokens=config["suppress_ids"])[0]
    expected = result.sequences_ids[0]
    suppress = torch.tensor(config["suppress_ids"])
    suppress_begin = torch.tensor(config["suppress_ids_begin"])
    cache = model.new_cache(1)
    logits = model.logits(torch.tensor([prompt]), audio, cache)[0, -1]
    tokens: list[int] = []
    for step in range(100):
        logits[suppress] = -np.inf
        if step == 0:
            logits[suppress_begin] = -np.inf
        if step < len(result.logits[0]):  # CTranslate2's logits of the same step, after the same suppression
            theirs = np.array(result.logits[0][step]).reshape(-1)
            kept = np.isfinite(theirs) & (theirs > -1e9)
            assert np.array_equal(kept, logits.isfinite().numpy())
            assert np.abs(theirs[kept] - logits.numpy()[kept]).max() < 1e-2
        token = int(logits.argmax())
        if token == tokenizer.eot:
            break
        tokens.append(token)
        logits = model.logits(torch.tensor([[token]]), audio, cache)[0, -1]
    assert tokens == expected
    text = tokenizer.decode(tokens).lower()
    for word in ("quick", "brown", "fox", "jumps", "lazy", "dog", "sells", "sea"):
        assert word in text, text


@pytest.mark.slow
def test_tiny_en_special_ids(tokenizer):
    t = tokenizer
    assert (t.eot, t.sot, t.translate, t.transcribe, t.sot_lm, t.sot_prev, t.no_speech, t.no_timestamps,
            t.timestamp_begin) == (50256, 50257, 50357, 50358, 50359, 50360, 50361, 50362, 50363)
    assert not t.multilingual and t.num_languages == 99 and len(t.vocabulary) == 51864
    assert t.sot_sequence("en", "transcribe") == (50257,) and t.sot_sequence(None, None) == (50257,)
    assert t.all_language_tokens[0] == 50258 and t.all_language_codes == tuple(LANGUAGES)[:99]
    assert t.language_token("German") == 50260 and t.decode([50260]) == "<|de|>"
    assert t.decode_with_timestamps([50363, 383, 2068, 50363 + 54, 50256]) == (
        "<|0.00|> The quick<|1.08|><|endoftext|>")
    tokens = [50257, 50362, 50363, 383, 2068, 50256]
    assert t.decode(tokens) == "<|startoftranscript|><|notimestamps|> The quick<|endoftext|>"
    assert t.decode(tokens, skip_special=True) == " The quick"
    assert t.timestamp_seconds(50363 + 1500) == pytest.approx(30.0)
    with pytest.raises(BadRequest, match="unsupported language"):
        t.language_token("klingon")


@pytest.mark.slow
def test_tiny_en_encode_and_decode_match_faster_whisper(tokenizer, tiny_en_files):
    import tokenizers  # test-only oracle (a dependency of faster-whisper)
    fw_tokenizer = pytest.importorskip("faster_whisper.tokenizer")
    theirs = fw_tokenizer.Tokenizer(tokenizers.Tokenizer.from_file(str(tiny_en_files["tokenizer.json"])),
                                    multilingual=False)
    by_rank = WhisperTokenizer(tokenizer.vocabulary)  # no tokenizer.json: tiktoken's merge-by-rank
    texts = [" Hello world!", "Glossary: Mr. O'Neil's 3.5% fee — isn't it?\n\n  Done.  ",
             " naïve café, Zürich, 東京, 🤖 emoji", "'s 'LL   spaces\tand\ttabs 1234567", ""]
    for text in texts:
        ids = tokenizer.encode(text)
        assert ids == theirs.encode(text) == by_rank.encode(text), text
        assert tokenizer.decode(ids) == text
        assert tokenizer.decode(ids + [50256], skip_special=True) == theirs.decode(ids + [50256])
    assert tokenizer.sot_sequence() == tuple(theirs.sot_sequence)
    assert tokenizer.non_speech_tokens == tuple(theirs.non_speech_tokens)
    broken = tokenizer.encode("🤖")[:1]  # an incomplete UTF-8 sequence decodes to U+FFFD, as tiktoken does
    assert tokenizer.decode(broken) == "\ufffd"


@pytest.mark.slow
def test_multilingual_vocabularies_shift_the_special_ids(tokenizer):
    vocabulary = tokenizer.vocabulary[:50256] + ["Ġextra"] + tokenizer.vocabulary[50256:]
    t = WhisperTokenizer(vocabulary)
    assert t.multilingual and len(vocabulary) == 51865
    assert (t.eot, t.sot, t.translate, t.transcribe, t.no_timestamps, t.timestamp_begin) == (
        50257, 50258, 50358, 50359, 50363, 50364)
    assert t.sot_sequence("en", "transcribe") == (50258, 50259, 50359)
    assert t.sot_sequence("fr", "translate") == (50258, 50259 + 6, 50358)
    assert t.sot_sequence(None, None) == (50258,)
