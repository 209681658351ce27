"""Whisper loaders for Hugging Face, openai-whisper .pt and whisper.cpp GGML files, and `load_any`.

Every file is written here from tiny random weights, the way each project's own tools write it; the loaded
model must hold the same tensors (fp16 files: exactly the fp16-rounded ones) and give the same logits. The
Hugging Face name mapping is checked against transformers itself, and the token layout against openai-whisper's
tokenizer, where those packages are installed.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from camelid.errors import BadModelFile, UnknownModel, UnsupportedModel
from camelid.speech.loaders import ggml, hf, openai
from camelid.speech.loaders.detect import detect_format, load_any
from camelid.speech.model import ModelDimensions, Whisper

DIMS = ModelDimensions(n_mels=80, n_audio_ctx=16, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
                       n_vocab=51864, n_text_ctx=24, n_text_state=32, n_text_head=4, n_text_layer=2)
F32_LOGITS, F16_LOGITS = 1e-5, 1e-2


# --- the original model -------------------------------------------------------------------------------------

def random_state(dims: ModelDimensions, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(value.shape, generator=generator) * 0.2
            for key, value in Whisper(dims).state_dict().items()}


def model_of(state: dict[str, torch.Tensor], dims: ModelDimensions = DIMS) -> Whisper:
    model = Whisper(dims)
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: threads only add waiting (several times slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_state(DIMS)


@pytest.fixture(scope="module")
def probe() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    mel = torch.randn(2, DIMS.n_mels, 2 * DIMS.n_audio_ctx, generator=generator)
    tokens = torch.randint(0, DIMS.n_vocab, (2, 6), generator=generator)
    return mel, tokens


def half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.half().float() for key, value in state.items()}


def assert_loaded(model: Whisper, expected: dict[str, torch.Tensor], probe, original: dict[str, torch.Tensor],
                  logits_atol: float) -> None:
    """Same dims and tensors as `expected`; logits equal to those of `expected` (1e-5) and of the original
    float32 weights (logits_atol)."""
    assert model.dims == DIMS
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert loaded[key].dtype == torch.float32 and torch.equal(loaded[key], value), key
    mel, tokens = probe
    logits = model(mel, tokens)
    torch.testing.assert_close(logits, model_of(expected)(mel, tokens), rtol=0, atol=F32_LOGITS)
    torch.testing.assert_close(logits, model_of(original)(mel, tokens), rtol=0, atol=logits_atol)


# --- writers: the formats as their own tools write them --------------------------------------------------------

HF_PARTS = {"attn.query": "self_attn.q_proj", "attn.key": "self_attn.k_proj", "attn.value": "self_attn.v_proj",
            "attn.out": "self_attn.out_proj", "attn_ln": "self_attn_layer_norm",
            "cross_attn.query": "encoder_attn.q_proj", "cross_attn.key": "encoder_attn.k_proj",
            "cross_attn.value": "encoder_attn.v_proj", "cross_attn.out": "encoder_attn.out_proj",
            "cross_attn_ln": "encoder_attn_layer_norm", "mlp.0": "fc1", "mlp.2": "fc2", "mlp_ln": "final_layer_norm"}
HF_TOP = {"encoder.ln_post": "encoder.layer_norm", "decoder.ln": "decoder.layer_norm",
          "decoder.token_embedding": "decoder.embed_tokens", "encoder.conv1": "encoder.conv1",
          "encoder.conv2": "encoder.conv2"}


def to_hf(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        if key.endswith("positional_embedding"):
            name = key.replace("positional_embedding", "embed_positions.weight")
        elif ".blocks." in key:
            stack, _, layer, rest = key.split(".", 3)
            part, kind = rest.rsplit(".", 1)
            name = f"{stack}.layers.{layer}.{HF_PARTS[part]}.{kind}"
        else:
            base, kind = key.rsplit(".", 1)
            name = f"{HF_TOP[base]}.{kind}"
        out[f"model.{name}"] = value.numpy()
    return out


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> Path:
    numpy_dtype = {"F32": np.float32, "F16": np.float16}[dtype]
    header: dict = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name, value in tensors.items():
        raw = np.ascontiguousarray(value, dtype=numpy_dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))
    return path


def hf_config(dims: ModelDimensions) -> dict:
    return {"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"],
            "vocab_size": dims.n_vocab, "num_mel_bins": dims.n_mels, "d_model": dims.n_audio_state,
            "encoder_layers": dims.n_audio_layer, "encoder_attention_heads": dims.n_audio_head,
            "decoder_layers": dims.n_text_layer, "decoder_attention_heads": dims.n_text_head,
            "encoder_ffn_dim": 4 * dims.n_audio_state, "decoder_ffn_dim": 4 * dims.n_text_state,
            "max_source_positions": dims.n_audio_ctx, "max_target_positions": dims.n_text_ctx,
            "activation_function": "gelu", "scale_embedding": False, "begin_suppress_tokens": [220, 50256],
            "suppress_tokens": [1, 2, 7], "tie_word_embeddings": True}


def write_hf_folder(folder: Path, state: dict[str, torch.Tensor], dtype: str = "F32",
                    generation: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", to_hf(state), dtype)
    (folder / "config.json").write_text(json.dumps(hf_config(DIMS)))
    if generation is not None:
        (folder / "generation_config.json").write_text(json.dumps(generation))
    return folder


SKIP_QUANTIZE = {"encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                 "decoder.positional_embedding"}  # whisper.cpp's quantize tool leaves these alone


def write_ggml(path: Path, state: dict[str, torch.Tensor], dims: ModelDimensions, tokens: list[bytes],
               use_f16: bool = True, quant=None) -> dict[str, torch.Tensor]:
    """A ggml-*.bin as convert-pt-to-ggml.py writes it (then quantized as whisper.cpp's quantize tool does
    when `quant` is a gguf GGMLQuantizationType); returns the float32 values each tensor should load as."""
    from gguf.quants import dequantize, quantize

    ftype = int(use_f16) if quant is None else 2000 + {8: 7, 2: 2, 7: 9}[int(quant)]  # ggml_ftype per type
    out = bytearray(struct.pack("<i", 0x67676D6C))
    out += struct.pack("<11i", dims.n_vocab, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                       dims.n_audio_layer, dims.n_text_ctx, dims.n_text_state, dims.n_text_head,
                       dims.n_text_layer, dims.n_mels, ftype)
    filters = np.random.default_rng(2).random((dims.n_mels, 201), dtype=np.float32)
    out += struct.pack("<ii", *filters.shape) + filters.tobytes()
    out += struct.pack("<i", len(tokens))
    for token in tokens:
        out += struct.pack("<i", len(token)) + token
    expected = {}
    for name, tensor in state.items():
        data = tensor.squeeze().numpy()
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            data = data.reshape(data.shape[0], 1)
        ttype = 1
        if data.ndim < 2 or name in SKIP_QUANTIZE or not use_f16:
            data, ttype = data.astype(np.float32), 0
        else:
            data = data.astype(np.float16)
        raw = data.tobytes()
        value = data.astype(np.float32)
        if quant is not None and data.ndim == 2 and name not in SKIP_QUANTIZE:
            quantized = quantize(data.astype(np.float32), quant)
            raw, ttype, value = quantized.tobytes(), int(quant), dequantize(quantized, quant)
        encoded = name.encode()
        out += struct.pack("<iii", data.ndim, len(encoded), ttype)
        out += struct.pack(f"<{data.ndim}i", *reversed(data.shape)) + encoded + raw
        expected[name] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)).reshape(tensor.shape)
    path.write_bytes(bytes(out))
    return expected


def sample_tokens(count: int = 50256) -> list[bytes]:
    """tiktoken-style ranks: the 256 bytes, a few merges that spell " hello", then unique fillers."""
    tokens = [bytes([b]) for b in range(256)] + [b"he", b"ll", b"llo", b" he", b" hello"]
    return tokens + [f"<fill{i}>".encode() for i in range(count - len(tokens))]




def write_ct2_folder(folder: Path, state: dict[str, torch.Tensor], vocabulary: list[str]) -> Path:
    """A minimal CTranslate2 v6 model.bin (fused projections, float32) + vocabulary.txt."""
    sd = {key: value.numpy() for key, value in state.items()}
    variables: dict[str, np.ndarray] = {}

    def lin(name: str, key: str) -> None:
        variables[f"{name}/weight"], variables[f"{name}/bias"] = sd[f"{key}.weight"], sd[f"{key}.bias"]

    def norm(name: str, key: str) -> None:
        variables[f"{name}/gamma"], variables[f"{name}/beta"] = sd[f"{key}.weight"], sd[f"{key}.bias"]

    def fused(name: str, key: str, roles: tuple[str, ...]) -> None:
        variables[f"{name}/weight"] = np.concatenate([sd[f"{key}.{r}.weight"] for r in roles])
        variables[f"{name}/bias"] = np.concatenate([sd.get(f"{key}.{r}.bias", np.zeros(DIMS.n_text_state,
                                                                                       np.float32))
                                                    for r in roles])

    for stack, layers in (("encoder", DIMS.n_audio_layer), ("decoder", DIMS.n_text_layer)):
        for layer in range(layers):
            name, key = f"{stack}/layer_{layer}", f"{stack}.blocks.{layer}"
            fused(f"{name}/self_attention/linear_0", f"{key}.attn", ("query", "key", "value"))
            lin(f"{name}/self_attention/linear_1", f"{key}.attn.out")
            norm(f"{name}/self_attention/layer_norm", f"{key}.attn_ln")
            if stack == "decoder":
                lin(f"{name}/attention/linear_0", f"{key}.cross_attn.query")
                fused(f"{name}/attention/linear_1", f"{key}.cross_attn", ("key", "value"))
                lin(f"{name}/attention/linear_2", f"{key}.cross_attn.out")
                norm(f"{name}/attention/layer_norm", f"{key}.cross_attn_ln")
            lin(f"{name}/ffn/linear_0", f"{key}.mlp.0")
            lin(f"{name}/ffn/linear_1", f"{key}.mlp.2")
            norm(f"{name}/ffn/layer_norm", f"{key}.mlp_ln")
    lin("encoder/conv1", "encoder.conv1")
    lin("encoder/conv2", "encoder.conv2")
    norm("encoder/layer_norm", "encoder.ln_post")
    norm("decoder/layer_norm", "decoder.ln")
    variables["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    variables["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    variables["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    variables["encoder/num_heads"] = np.array(DIMS.n_audio_head, dtype=np.int16)
    variables["decoder/num_heads"] = np.array(DIMS.n_text_head, dtype=np.int16)

    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    ids = {np.dtype("float32"): 0, np.dtype("int16"): 2}
    out = bytearray(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, len(variables)))
    for name in sorted(variables):
        value = np.ascontiguousarray(variables[name])
        out += string(name) + struct.pack(f"<B{value.ndim}I", value.ndim, *value.shape)
        out += struct.pack("<BI", ids[value.dtype], value.nbytes) + value.tobytes()
    out += struct.pack("<I", 0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.bin").write_bytes(bytes(out))
    (folder / "vocabulary.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    return folder


# --- openai-whisper .pt ----------------------------------------------------------------------------------------

def test_openai_checkpoint_fp16_and_fp32(tmp_path, state, probe):
    dims = {key: getattr(DIMS, key) for key in openai.DIMENSION_KEYS}
    for dtype, expected, atol in ((torch.float16, half(state), F16_LOGITS), (torch.float32, state, F32_LOGITS)):
        path = tmp_path / f"tiny-{dtype}.pt"
        torch.save({"dims": dims, "model_state_dict": {k: v.to(dtype) for k, v in state.items()}}, path)
        model, config = openai.load_whisper(path)
        assert_loaded(model, expected, probe, state, atol)
        assert config["suppress_ids_begin"] == [220, 50256] and config["lang_ids"][0] == 50258
        assert "alignment_heads" not in config and model.alignment_heads[1].all()  # openai's default
        assert detect_format(path) == "openai"
        model, config, _ = load_any(path)
        assert_loaded(model, expected, probe, state, atol)
    # the vocabulary is not in the checkpoint: a gpt2.tiktoken beside it (as openai-whisper ships it) is used
    lines = [base64.b64encode(token) + b" %d" % rank for rank, token in enumerate(sample_tokens())]
    (tmp_path / "gpt2.tiktoken").write_bytes(b"\n".join(lines) + b"\n")
    _, _, tokenizer = load_any(tmp_path / "tiny-torch.float32.pt")
    assert tokenizer is not None and tokenizer.encode(" hello") == [260] and tokenizer.sot == 50257


@pytest.mark.parametrize("form", ["pairs", "mask", "base85"])
def test_openai_alignment_heads_in_the_checkpoint(tmp_path, state, form):
    mask = torch.zeros(DIMS.n_text_layer, DIMS.n_text_head, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = True
    value = {"pairs": [[0, 1], [1, 3]], "mask": mask,
             "base85": base64.b85encode(gzip.compress(mask.numpy().tobytes())).decode()}[form]
    dims = {key: getattr(DIMS, key) for key in openai.DIMENSION_KEYS}
    torch.save({"dims": dims, "model_state_dict": state, "alignment_heads": value}, tmp_path / "m.pt")
    model, config = openai.load_whisper(tmp_path / "m.pt")
    assert config["alignment_heads"] == [[0, 1], [1, 3]]
    assert torch.equal(model.alignment_heads, mask)


def test_openai_tokenizer_matches_openai_whisper():
    """The tiktoken vocabulary + openai's special layout, against openai-whisper's own tokenizer."""
    tokenizer_module = pytest.importorskip("whisper.tokenizer")
    for n_vocab, multilingual in ((51864, False), (51865, True), (51866, True)):
        path = openai.find_tiktoken_file(n_vocab)
        assert path is not None
        ours = openai.tokenizer_from_tiktoken(path, n_vocab)
        theirs = tokenizer_module.get_tokenizer(multilingual, num_languages=n_vocab - 51765 - multilingual)
        assert len(ours.vocabulary) == n_vocab
        for name in ("eot", "sot", "transcribe", "translate", "sot_prev", "sot_lm", "no_speech",
                     "no_timestamps", "timestamp_begin"):
            assert getattr(ours, name) == getattr(theirs, name), (n_vocab, name)
        assert sorted(ours.all_language_tokens) == sorted(theirs.all_language_tokens)
        if multilingual:
            german = tokenizer_module.get_tokenizer(True, num_languages=n_vocab - 51766, language="de",
                                                    task="translate")
            assert ours.sot_sequence("de", "translate") == german.sot_sequence
        else:
            assert ours.sot_sequence() == theirs.sot_sequence
        text = " The quick brown fox, naïve café — 東京! 42"
        assert ours.encode(text) == theirs.encode(text)
        ids = theirs.encode(text) + [theirs.timestamp_begin + 7]
        assert ours.decode_with_timestamps(ids) == theirs.decode_with_timestamps(ids)


# --- Hugging Face ------------------------------------------------------------------------------------------------

GENERATION = {"alignment_heads": [[1, 0], [1, 2]], "suppress_tokens": [3, 4], "begin_suppress_tokens": [220, 50256],
              "lang_to_id": {"<|de|>": 50261, "<|en|>": 50259}}


@pytest.mark.parametrize("dtype", ["F32", "F16"])
def test_hf_safetensors(tmp_path, state, probe, dtype):
    folder = write_hf_folder(tmp_path / "hf", state, dtype, GENERATION)
    expected, atol = (state, F32_LOGITS) if dtype == "F32" else (half(state), F16_LOGITS)
    model, config = hf.load_whisper(folder)
    assert_loaded(model, expected, probe, state, atol)
    assert config == {"alignment_heads": [[1, 0], [1, 2]], "suppress_ids": [3, 4],
                      "suppress_ids_begin": [220, 50256], "lang_ids": [50259, 50261]}
    assert model.alignment_heads.nonzero().tolist() == [[1, 0], [1, 2]]
    for source in (folder, folder / "model.safetensors", {p.name: p for p in folder.iterdir()}):
        assert detect_format(source) == "hf"
        model, _, tokenizer = load_any(source)
        assert tokenizer is None  # no vocab.json / tokenizer.json written
        assert_loaded(model, expected, probe, state, atol)


def test_hf_sharded_bf16_without_generation_config_and_with_a_tokenizer(tmp_path, state, probe):
    folder = tmp_path / "sharded"
    folder.mkdir()
    tensors = to_hf(state)
    names = sorted(tensors)
    bf16 = {name: torch.from_numpy(value).bfloat16() for name, value in tensors.items()}
    weight_map = {}
    for shard, part in (("model-00001-of-00002.safetensors", names[::2]),
                        ("model-00002-of-00002.safetensors", names[1::2])):
        from safetensors.torch import save_file  # the real writer (a transformers dependency)

        save_file({name: bf16[name] for name in part}, str(folder / shard))
        weight_map.update({name: shard for name in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(hf_config(DIMS)))
    vocab = {openai.byte_level(token): index for index, token in enumerate(sample_tokens())}
    vocab["<|endoftext|>"] = 50256
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nh e\nl l\n", encoding="utf-8")
    expected = {key: value.bfloat16().float() for key, value in state.items()}
    model, config, tokenizer = load_any(folder)
    assert_loaded(model, expected, probe, state, 5e-2)
    assert config == {"suppress_ids": [1, 2, 7], "suppress_ids_begin": [220, 50256],
                      "lang_ids": list(range(50258, 50357))}
    assert tokenizer is not None and tokenizer.eot == 50256 and tokenizer.timestamp_begin == 50363
    assert tokenizer.encode("hell") == [256, 257]  # merges.txt order: only h+e and l+l
    assert tokenizer.decode([260, 33]) == " hello!"
    # tokenizer.json (vocabulary and merges in one file) wins over vocab.json + merges.txt
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"vocab": vocab, "merges": ["l l", "ll o"]}}))
    tokenizer = hf.load_tokenizer(folder)
    assert tokenizer is not None and tokenizer.encode("hello") == [104, 101, 258]


def test_hf_pytorch_model_bin_with_a_tied_proj_out(tmp_path, state, probe):
    folder = tmp_path / "legacy"
    folder.mkdir()
    tensors = {name: torch.from_numpy(value) for name, value in to_hf(state).items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"].clone()
    torch.save(tensors, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(hf_config(DIMS)))
    assert detect_format(folder) == "hf"
    model, _, _ = load_any(folder)
    assert_loaded(model, state, probe, state, F32_LOGITS)
    raw = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BadModelFile, match="not a readable PyTorch state_dict") as err:
        load_any(folder)
    _one_line(err)


def test_hf_mapping_against_transformers(tmp_path, probe):
    """transformers' own WhisperForConditionalGeneration, saved by save_pretrained, is the oracle."""
    transformers = pytest.importorskip("transformers")
    config = transformers.WhisperConfig(
        vocab_size=DIMS.n_vocab, num_mel_bins=DIMS.n_mels, d_model=DIMS.n_audio_state,
        encoder_layers=DIMS.n_audio_layer, encoder_attention_heads=DIMS.n_audio_head,
        decoder_layers=DIMS.n_text_layer, decoder_attention_heads=DIMS.n_text_head,
        encoder_ffn_dim=4 * DIMS.n_audio_state, decoder_ffn_dim=4 * DIMS.n_text_state,
        max_source_positions=DIMS.n_audio_ctx, max_target_positions=DIMS.n_text_ctx)
    reference = transformers.WhisperForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in reference.parameters():  # distinct values everywhere (no unit LayerNorms)
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    reference.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()
    mel, tokens = probe
    with torch.no_grad():
        expected = reference(input_features=mel, decoder_input_ids=tokens).logits
    model, _ = hf.load_whisper(tmp_path / "saved")
    assert model.dims == DIMS
    torch.testing.assert_close(model(mel, tokens), expected, rtol=0, atol=1e-4)
    model, _, _ = load_any(tmp_path / "saved")
    torch.testing.assert_close(model(mel, tokens), expected, rtol=0, atol=1e-4)


# --- whisper.cpp GGML -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("use_f16", [True, False])
def test_ggml_f16_and_f32(tmp_path, state, probe, use_f16):
    path = tmp_path / "ggml-tiny.bin"
    expected = write_ggml(path, state, DIMS, sample_tokens(), use_f16=use_f16)
    if use_f16:
        assert torch.equal(expected["decoder.token_embedding.weight"], half(state)["decoder.token_embedding.weight"])
        assert torch.equal(expected["encoder.conv1.bias"], state["encoder.conv1.bias"])  # written as f32
    else:
        assert all(torch.equal(expected[key], value) for key, value in state.items())
    model, config = ggml.load_whisper(path)
    assert_loaded(model, expected, probe, state, F16_LOGITS if use_f16 else F32_LOGITS)
    assert config == {"lang_ids": list(range(50258, 50357)), "suppress_ids_begin": [220, 50256]}
    parsed = ggml.read_ggml(path, tensors=False)
    assert parsed.mel_filters.shape == (80, 201) and parsed.ftype == int(use_f16) and not parsed.tensors
    assert detect_format(path) == "ggml"
    model, _, tokenizer = load_any(path)
    assert_loaded(model, expected, probe, state, F16_LOGITS if use_f16 else F32_LOGITS)
    assert (tokenizer.eot, tokenizer.sot, tokenizer.transcribe, tokenizer.no_timestamps,
            tokenizer.timestamp_begin) == (50256, 50257, 50358, 50362, 50363)
    assert tokenizer.encode(" hello") == [260] and tokenizer.decode([260, 33]) == " hello!"
    assert tokenizer.decode_with_timestamps([50257, 260, 50364]) == "<|startoftranscript|> hello<|0.02|>"


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_0", "Q5_1"])
def test_ggml_quantized(tmp_path, state, probe, quant):
    from gguf.constants import GGMLQuantizationType

    qtype = GGMLQuantizationType[quant]
    path = tmp_path / "ggml-q.bin"
    expected = write_ggml(path, state, DIMS, sample_tokens(), quant=qtype)
    assert not torch.equal(expected["encoder.blocks.0.mlp.0.weight"], half(state)["encoder.blocks.0.mlp.0.weight"])
    parsed = ggml.read_ggml(path)
    assert parsed.tensor_types["decoder.blocks.1.attn.query.weight"] == int(qtype)
    assert parsed.tensor_types["encoder.conv2.weight"] == 1  # 3-D: left in f16
    model, _ = ggml.load_whisper(path)
    assert_loaded(model, expected, probe, state, 1.0)


# --- load_any and the CTranslate2 route ---------------------------------------------------------------------------

def test_load_any_ct2_folder_file_and_resolved_model(tmp_path, state, probe):
    vocabulary = [openai.byte_level(token) for token in sample_tokens()] + openai.special_tokens(DIMS.n_vocab)
    folder = write_ct2_folder(tmp_path / "ct2", state, vocabulary)

    class Resolved:  # camelid.store.resolve.ResolvedModel's shape
        def __init__(self, files: dict[str, Path]) -> None:
            self.files = files

    for source in (folder, folder / "model.bin", Resolved({entry.name: entry for entry in folder.iterdir()})):
        assert detect_format(source) == "ct2"
        model, config, tokenizer = load_any(source)
        assert_loaded(model, state, probe, state, F32_LOGITS)
        assert config == {} and tokenizer is not None and tokenizer.encode(" hello") == [260]
    (folder / "vocabulary.txt").unlink()
    assert load_any(folder)[2] is None


def test_unknown_formats_and_missing_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedModel, match="notes.txt is not a Whisper model.*CTranslate2.*Hugging Face.*"
                                               "openai-whisper.*whisper.cpp") as err:
        load_any(tmp_path / "notes.txt")
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedModel, match="no files"):
        load_any(tmp_path / "empty")
    (tmp_path / "gguf.bin").write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(UnsupportedModel):
        load_any(tmp_path / "gguf.bin")
    with pytest.raises(UnknownModel):
        load_any(tmp_path / "nowhere")


# --- corrupt files ------------------------------------------------------------------------------------------------

def _one_line(err: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(err.value) and len(str(err.value)) < 600


def test_corrupt_hf_files(tmp_path, state):
    folder = write_hf_folder(tmp_path / "hf", state)
    raw = (folder / "model.safetensors").read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    for cut in (0, 5, 8, 8 + header_size // 2, 8 + header_size + 100, len(raw) - 1):
        (folder / "model.safetensors").write_bytes(raw[:cut])
        with pytest.raises(BadModelFile, match="truncated|corrupt") as err:
            load_any(folder)
        _one_line(err)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 4) + b"nope" + raw[8:])
    with pytest.raises(BadModelFile, match="not JSON"):
        hf.load_whisper(folder)
    tensors = to_hf(state)
    del tensors["model.decoder.layers.1.fc2.bias"]
    write_safetensors(folder / "model.safetensors", tensors)
    with pytest.raises(BadModelFile, match="decoder.blocks.1.mlp.2.bias is missing"):
        hf.load_whisper(folder)
    write_safetensors(folder / "model.safetensors", {**to_hf(state), "proj_out.weight": np.zeros((DIMS.n_vocab, 32))})
    with pytest.raises(UnsupportedModel, match="proj_out"):
        hf.load_whisper(folder)
    write_safetensors(folder / "model.safetensors", to_hf(state))
    (folder / "config.json").write_text(json.dumps({**hf_config(DIMS), "d_model": "wide"}))
    with pytest.raises(BadModelFile, match="d_model"):
        hf.load_whisper(folder)
    (folder / "config.json").write_text("{")
    with pytest.raises(BadModelFile, match="config.json cannot be read"):
        load_any(folder)


def test_corrupt_openai_checkpoints(tmp_path, state):
    dims = {key: getattr(DIMS, key) for key in openai.DIMENSION_KEYS}
    path = tmp_path / "m.pt"
    torch.save({"dims": dims, "model_state_dict": half(state)}, path)
    raw = path.read_bytes()
    for cut in (0, 10, len(raw) // 2, len(raw) - 10):
        path.write_bytes(raw[:cut])
        with pytest.raises(BadModelFile, match="not a readable openai-whisper checkpoint") as err:
            load_any(path)
        _one_line(err)
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(BadModelFile):
        openai.load_whisper(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(BadModelFile, match="'dims' and 'model_state_dict'"):
        openai.load_whisper(path)
    torch.save({"dims": {**dims, "n_text_head": 0}, "model_state_dict": state}, path)
    with pytest.raises(BadModelFile, match="n_text_head"):
        openai.load_whisper(path)
    torch.save({"dims": {k: v for k, v in dims.items() if k != "n_mels"}, "model_state_dict": state}, path)
    with pytest.raises(BadModelFile, match="lack n_mels"):
        openai.load_whisper(path)
    torch.save({"dims": dims, "model_state_dict": state, "alignment_heads": [[2, 0]]}, path)
    with pytest.raises(BadModelFile, match="alignment heads"):
        openai.load_whisper(path)
    partial = {k: v for k, v in state.items() if k != "encoder.ln_post.bias"}
    torch.save({"dims": dims, "model_state_dict": partial}, path)
    with pytest.raises(BadModelFile, match="encoder.ln_post.bias is missing"):
        openai.load_whisper(path)


def test_corrupt_ggml_files(tmp_path, state):
    path = tmp_path / "ggml.bin"
    tokens = sample_tokens(300)  # fewer than the 50256 ordinary tokens: the model loads, a tokenizer cannot
    write_ggml(path, state, DIMS, tokens)
    assert ggml.load_whisper(path)[0].dims == DIMS
    with pytest.raises(BadModelFile, match="holds 300 tokens"):
        load_any(path)
    raw = path.read_bytes()
    vocabulary_end = 4 + 44 + 8 + 80 * 201 * 4 + 4 + sum(4 + len(token) for token in tokens)
    for cut in (2, 20, 48 + 4 + 1000, vocabulary_end - 3, vocabulary_end + 5, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(BadModelFile, match="truncated|not a whisper.cpp") as err:
            ggml.load_whisper(path)
        _one_line(err)
    (tmp_path / "ggml-small.bin").write_bytes(raw[:3])  # recognised by its name when too short for the magic
    with pytest.raises(BadModelFile, match="does not start with the 'ggml' magic"):
        load_any(tmp_path / "ggml-small.bin")
    path.write_bytes(raw[:vocabulary_end])
    with pytest.raises(BadModelFile, match="holds no tensors"):
        ggml.load_whisper(path)
    for offset, value, message in ((0, 9, "9 dimensions"), (8, 99, "unknown ggml type 99"),
                                   (12, -5, "dimensions")):
        corrupt = bytearray(raw)
        struct.pack_into("<i", corrupt, vocabulary_end + offset, value)
        path.write_bytes(bytes(corrupt))
        with pytest.raises(BadModelFile, match=message):
            ggml.load_whisper(path)
    corrupt = bytearray(raw)
    struct.pack_into("<i", corrupt, 8, 1 << 24)  # n_audio_ctx: the sinusoids alone would need 2 GiB
    path.write_bytes(bytes(corrupt))
    with pytest.raises(BadModelFile, match="implausible model dimensions"):
        ggml.load_whisper(path)
    write_ggml(path, {k: v for k, v in state.items() if k != "decoder.ln.weight"}, DIMS, tokens)
    with pytest.raises(BadModelFile, match="decoder.ln.weight is missing"):
        ggml.load_whisper(path)
