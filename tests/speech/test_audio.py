"""Audio front of speech-to-text: decoding to 16 kHz mono, the error messages, and log-mel features that match
openai-whisper's ``whisper.audio`` (oracles: the ``openai-whisper`` and ``librosa`` packages)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import wave
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from camelid.errors import BadRequest
from camelid.speech.audio import (
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    load_audio,
    log_mel_spectrogram,
    mel_filters,
    pad_or_trim,
)

# ------------------------------------------------------------------------------------------------------------
# Synthetic signals


def chirp(seconds: float, rate: int = SAMPLE_RATE, low: float = 100.0, high: float = 7000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    sweep = low + (high - low) * t / (2 * max(seconds, 1e-9))
    return (0.5 * np.sin(2 * np.pi * sweep * t)).astype(np.float32)


def noise(seconds: float, seed: int = 0, rate: int = SAMPLE_RATE) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def speech_like(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Voiced harmonics (a wandering 120 Hz pitch) shaped by three formants, in syllable-rate bursts."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / rate
    voice = np.zeros_like(t)
    for harmonic in range(1, 30):
        frequency = 120.0 * harmonic
        gain = sum(np.exp(-(((frequency - formant) / 150.0) ** 2)) for formant in (700.0, 1200.0, 2600.0))
        voice += (gain + 0.02) / harmonic * np.sin(harmonic * phase)
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    return (0.3 * voice * envelope / max(np.abs(voice).max(), 1e-9)).astype(np.float32)


def sine(seconds: float, rate: int, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


# ------------------------------------------------------------------------------------------------------------
# Files written by the tests


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int) -> None:
    """Float samples [frames] or [frames, channels] in [-1, 1] -> PCM WAV, ``width`` bytes a sample."""
    samples = samples if samples.ndim == 2 else samples[:, None]  # [frames, channels]
    scale = float(1 << (8 * width - 1))
    ints = np.clip(np.round(samples * scale), -scale, scale - 1).astype(np.int64)
    if width == 1:
        data = (ints + 128).astype(np.uint8).tobytes()
    else:
        data = ints.astype("<i8").view(np.uint8).reshape(-1, 8)[:, :width].tobytes()
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(samples.shape[1])
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(data)


def pcm_values(samples: np.ndarray, width: int) -> np.ndarray:
    """The float values a WAV of ``width`` bytes holds for ``samples`` (the same rounding as write_wav)."""
    scale = float(1 << (8 * width - 1))
    return np.clip(np.round(samples * scale), -scale, scale - 1) / scale


def encode_with_av(
    path: Path, samples: np.ndarray, rate: int, container: str, codec: str, video: bool = False
) -> None:
    """Encode mono float samples with PyAV's encoders (optionally next to a small mpeg4 video track)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, options={"strict": "experimental"})
        if video:
            picture = out.add_stream("mpeg4", rate=25)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
            for index in range(int(25 * len(samples) / rate)):
                image = np.full((48, 64, 3), index * 4 % 256, np.uint8)
                out.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(picture.encode())
        for start in range(0, len(samples), 4096):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + 4096].copy(), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def decode_like_ffmpeg(path: Path) -> np.ndarray:
    """Oracle for whisper's ``ffmpeg -ac 1 -ar 16000 -f s16le``: PyAV decoding to mono s16 at 16 kHz."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    pieces = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.float32) / 32768.0


def best_correlation(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 2000) -> float:
    """Highest normalized correlation of the two signals over lags in [-max_lag, max_lag] (codec delays)."""
    best = 0.0
    for lag in range(-max_lag, max_lag + 1, 1):
        a = decoded[max(lag, 0) :]
        b = reference[max(-lag, 0) :]
        n = min(len(a), len(b))
        if n < len(reference) // 2:
            continue
        a, b = a[:n], b[:n]
        best = max(best, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
    return best


def png_bytes() -> bytes:
    """A valid 4x4 grey PNG image (no audio stream), written with zlib."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * 4 for _ in range(4)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def wav_with_format_tag(tag: int) -> bytes:
    """A well-formed RIFF/WAVE file whose fmt chunk names codec ``tag`` (0x1234 is no codec FFmpeg knows)."""
    fmt = struct.pack("<HHIIHH", tag, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
    data = b"\x00\x01" * 1600
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


# ------------------------------------------------------------------------------------------------------------
# Log-mel features against openai-whisper


@pytest.fixture(scope="module")
def whisper_audio():
    import whisper.audio  # the oracle: openai-whisper, installed --no-deps by the test command

    return whisper.audio


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_librosa_and_whisper_npz(n_mels, whisper_audio):
    import librosa
    ours = mel_filters(n_mels)
    assert ours.shape == (n_mels, 201) and ours.dtype == np.float32
    reference = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)
    assert np.abs(ours - reference).max() <= 1e-6  # measured: 0.0 (bit-identical)
    packaged = whisper_audio.mel_filters("cpu", n_mels).numpy()
    assert np.abs(ours - packaged).max() <= 1e-6  # measured: 0.0


SIGNALS = {
    "chirp_1s": lambda: chirp(1.0),
    "noise_3s": lambda: noise(3.0),
    "speech_7s": lambda: speech_like(7.3),
    "chirp_30s": lambda: chirp(30.0),
    "noise_31s": lambda: noise(31.2, seed=3),
    "shortest": lambda: noise(201 / SAMPLE_RATE, seed=1),
    "odd_length": lambda: speech_like(16037 / SAMPLE_RATE),
    "silence": lambda: np.zeros(8000, np.float32),
}


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_log_mel_matches_whisper(signal, n_mels, whisper_audio):
    audio = SIGNALS[signal]()
    for padding in (0, N_SAMPLES) if signal in ("speech_7s", "shortest") else (0,):
        ours = log_mel_spectrogram(audio, n_mels=n_mels, padding=padding)
        reference = whisper_audio.log_mel_spectrogram(torch.from_numpy(audio), n_mels=n_mels, padding=padding)
        assert ours.shape == reference.shape == (n_mels, (len(audio) + padding) // 160)
        assert ours.dtype == torch.float32
        assert (ours - reference).abs().max().item() <= 1e-4  # measured: 0.0 for every signal


def test_log_mel_inputs_batch_and_dtypes(whisper_audio, tmp_path):
    audio = speech_like(2.0)
    reference = whisper_audio.log_mel_spectrogram(torch.from_numpy(audio))
    assert torch.equal(log_mel_spectrogram(torch.from_numpy(audio)), reference)
    assert (log_mel_spectrogram(audio.astype(np.float64)) - reference).abs().max() <= 1e-4  # cast to float32
    batch = np.stack([audio, chirp(2.0)])  # [2, samples]
    batched = log_mel_spectrogram(batch)
    assert batched.shape == (2, 80, 200)
    assert torch.equal(batched, whisper_audio.log_mel_spectrogram(torch.from_numpy(batch)))
    path = tmp_path / "speech.wav"
    write_wav(path, audio, SAMPLE_RATE, 2)
    from_file = log_mel_spectrogram(str(path))
    assert torch.equal(from_file, log_mel_spectrogram(pcm_values(audio, 2).astype(np.float32)))
    assert log_mel_spectrogram(path.read_bytes()).shape == (80, 200)


def test_whisper_shapes_for_one_window():
    features = log_mel_spectrogram(pad_or_trim(noise(12.0)))
    assert features.shape == (80, N_FRAMES)
    assert log_mel_spectrogram(noise(1.0), padding=N_SAMPLES)[:, :N_FRAMES].shape == (80, N_FRAMES)


def test_log_mel_too_short():
    with pytest.raises(AudioError) as caught:
        log_mel_spectrogram(np.zeros(200, np.float32))
    assert str(caught.value) == "audio is too short for a spectrogram: 200 samples, at least 201 needed"
    assert log_mel_spectrogram(np.zeros(200, np.float32), padding=1).shape == (80, 1)


def test_pad_or_trim_numpy_and_torch():
    array = np.arange(10, dtype=np.float32)
    assert np.array_equal(pad_or_trim(array, 4), array[:4])
    assert np.array_equal(pad_or_trim(array, 12), np.concatenate([array, np.zeros(2, np.float32)]))
    assert pad_or_trim(array, 10) is array
    assert pad_or_trim(np.ones(5, np.float32)).shape == (N_SAMPLES,)
    tensor = torch.arange(10.0)
    assert torch.equal(pad_or_trim(tensor, 4), tensor[:4])
    assert torch.equal(pad_or_trim(tensor, 12), torch.cat([tensor, torch.zeros(2)]))
    grid = np.ones((3, 5), np.float32)
    assert pad_or_trim(grid, 7, axis=0).shape == (7, 5)
    assert pad_or_trim(torch.from_numpy(grid), 7, axis=0).shape == (7, 5)
    assert pad_or_trim(torch.from_numpy(grid), 2, axis=-1).shape == (3, 2)
    assert torch.equal(pad_or_trim(torch.from_numpy(grid), 7, axis=0)[3:], torch.zeros(4, 5))


# ------------------------------------------------------------------------------------------------------------
# Decoding WAV


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_pcm_widths_at_16k_decode_exactly(width, tmp_path):
    samples = sine(0.5, SAMPLE_RATE, amplitude=0.9)
    path = tmp_path / f"pcm{8 * width}.wav"
    write_wav(path, samples, SAMPLE_RATE, width)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (8000,)
    # measured: 0.0 (8/16/24-bit), 3e-8 (32-bit: float32 rounding of 32-bit integers)
    assert np.abs(audio - pcm_values(samples, width)).max() <= 1e-7
    assert np.abs(audio - samples).max() <= {1: 1 / 256, 2: 4e-5, 3: 1e-6, 4: 1e-6}[width]  # quantization


def test_wav_stereo_is_averaged(tmp_path):
    left, right = sine(0.5, SAMPLE_RATE, 440.0, 0.6), sine(0.5, SAMPLE_RATE, 1000.0, 0.3)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, right], axis=1), SAMPLE_RATE, 2)
    audio = load_audio(path)
    expected = (pcm_values(left, 2) + pcm_values(right, 2)) / 2
    assert np.abs(audio - expected).max() <= 1e-7


def test_wav_six_channels_are_averaged(tmp_path):
    channels = np.stack([sine(0.25, SAMPLE_RATE, 200.0 * (k + 1), 0.1 * (k + 1)) for k in range(6)], axis=1)
    path = tmp_path / "surround.wav"
    write_wav(path, channels, SAMPLE_RATE, 3)
    assert np.abs(load_audio(path) - pcm_values(channels, 3).mean(axis=1)).max() <= 1e-6


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wav_44k_stereo_resampled_to_16k(width, tmp_path):
    seconds = 1.0
    stereo = np.stack([sine(seconds, 44100, 440.0, 0.5), sine(seconds, 44100, 440.0, 0.3)], axis=1)
    path = tmp_path / f"cd{8 * width}.wav"
    write_wav(path, stereo, 44100, width)
    audio = load_audio(path)
    assert audio.shape == (16000,)
    analytic = sine(seconds, SAMPLE_RATE, 440.0, 0.4)
    inner = slice(64, -64)  # the resampler's filter rings at the two ends
    error = np.abs(audio - analytic)[inner].max()
    assert error <= (8e-3 if width == 1 else 1e-4)  # measured: 8-bit 3.3e-3; 16-bit 1.7e-5; 24/32-bit 8.8e-6
    # And what whisper's ffmpeg call gives (s16 output, FFmpeg's own down-mix): within s16 rounding.
    assert np.abs(audio - decode_like_ffmpeg(path)).max() <= (5e-4 if width == 1 else 5e-5)  # 9.8e-5 / 1.5e-5


def test_wav_other_rates(tmp_path):
    for rate in (8000, 22050, 48000):
        path = tmp_path / f"rate{rate}.wav"
        write_wav(path, sine(0.5, rate, 300.0), rate, 2)
        audio = load_audio(path)
        assert audio.shape == (8000,)
        assert np.abs(audio - sine(0.5, SAMPLE_RATE, 300.0))[64:-64].max() <= 1e-4  # measured: <= 2.7e-5


def test_other_target_rate(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, sine(1.0, SAMPLE_RATE), SAMPLE_RATE, 2)
    assert load_audio(path, sr=8000).shape == (8000,)


def test_float_wav_goes_through_pyav(tmp_path):
    path = tmp_path / "float.wav"
    samples = sine(0.5, 22050).astype(np.float32)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=22050)
        frame = av.AudioFrame.from_ndarray(samples[None, :].copy(), format="flt", layout="mono")
        frame.sample_rate = 22050
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    audio = load_audio(path)
    assert audio.shape == (8000,)
    assert np.array_equal(audio, decode_like_ffmpeg(path))


# ------------------------------------------------------------------------------------------------------------
# Decoding compressed formats and video through PyAV


ENCODINGS = [  # (suffix, container, codec, rate, allowed extra duration in seconds)
    ("mp3", "mp3", "libmp3lame", 44100, 0.03),
    ("ogg", "ogg", "libopus", 48000, 0.03),
    ("oga", "ogg", "vorbis", 44100, 0.05),
    ("flac", "flac", "flac", 22050, 0.0),
    ("m4a", "ipod", "aac", 44100, 0.06),  # AAC priming samples are kept, as ffmpeg keeps them
    ("webm", "webm", "libopus", 48000, 0.03),
]


@pytest.mark.parametrize("suffix,container,codec,rate,slack", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_compressed_formats(suffix, container, codec, rate, slack, tmp_path):
    seconds = 1.5
    original = speech_like(seconds, rate)
    path = tmp_path / f"clip.{suffix}"
    encode_with_av(path, original, rate, container, codec)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    duration = len(audio) / SAMPLE_RATE
    assert seconds - 0.001 <= duration <= seconds + slack + 0.001
    # Same samples as whisper's ffmpeg pipeline, and the waveform of what was encoded.
    assert np.array_equal(audio, decode_like_ffmpeg(path))
    assert best_correlation(audio, speech_like(seconds)) >= 0.9  # measured: 0.989 (mp3) to 0.998 (m4a)


def test_video_with_audio_track(tmp_path):
    seconds = 2.0
    path = tmp_path / "clip.mp4"
    encode_with_av(path, speech_like(seconds, 44100), 44100, "mp4", "aac", video=True)
    audio = load_audio(path)
    assert seconds <= len(audio) / SAMPLE_RATE <= seconds + 0.06
    assert best_correlation(audio, speech_like(seconds)) >= 0.9


def test_raw_bytes(tmp_path):
    wav = tmp_path / "a.wav"
    write_wav(wav, sine(0.5, 44100), 44100, 2)
    assert np.array_equal(load_audio(wav.read_bytes()), load_audio(wav))
    assert np.array_equal(load_audio(bytearray(wav.read_bytes())), load_audio(wav))
    mp3 = tmp_path / "a.mp3"
    encode_with_av(mp3, speech_like(1.0, 44100), 44100, "mp3", "libmp3lame")
    assert np.array_equal(load_audio(memoryview(mp3.read_bytes())), load_audio(mp3))


# ------------------------------------------------------------------------------------------------------------
# Errors: one AudioError with one message naming the input and the reason


def expect_error(source, message: str, **kwargs) -> None:
    with pytest.raises(AudioError) as caught:
        load_audio(source, **kwargs)
    assert str(caught.value) == message
    assert isinstance(caught.value, BadRequest)
    error = caught.value
    assert error.__cause__ is None and (
        error.__context__ is None or error.__suppress_context__
    )  # no av/wave chain


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    expect_error(path, f"cannot load audio from '{path}': no such file")
    expect_error(tmp_path, f"cannot load audio from '{tmp_path}': it is a directory, not a file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    expect_error(path, f"cannot load audio from '{path}': the file is empty")
    expect_error(b"", "cannot load audio from the audio data: it is empty")
    expect_error(b"", "cannot load audio from 'upload.wav': it is empty", name="upload.wav")


def test_corrupt_files(tmp_path):
    reason = "the data is corrupt or not in an audio or video format FFmpeg knows"
    random_bytes = tmp_path / "random.mp3"
    random_bytes.write_bytes(np.random.default_rng(7).bytes(8192))
    expect_error(random_bytes, f"cannot load audio from '{random_bytes}': {reason}")
    good = tmp_path / "good.wav"
    write_wav(good, sine(0.2, SAMPLE_RATE), SAMPLE_RATE, 2)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:20])  # cut inside the fmt chunk
    expect_error(truncated, f"cannot load audio from '{truncated}': {reason}")
    huge_chunk = bytearray(good.read_bytes())
    huge_chunk[16:20] = (0x7FFFFFFF).to_bytes(4, "little")  # a fmt chunk past the end: `wave` raised RuntimeError
    expect_error(bytes(huge_chunk), f"cannot load audio from 'chunk.wav': {reason}", name="chunk.wav")
    text = tmp_path / "notes.ogg"
    text.write_text("not audio at all\n" * 50)
    expect_error(text, f"cannot load audio from '{text}': {reason}")
    expect_error(b"\x00garbage" * 100, f"cannot load audio from 'upload.bin': {reason}", name="upload.bin")


def test_playlists_and_concat_scripts_open_nothing(tmp_path, monkeypatch):
    """An upload must not make FFmpeg read local files or URLs it names (ffconcat scripts, HLS playlists)."""
    monkeypatch.chdir(tmp_path)
    write_wav(tmp_path / "secret.wav", sine(1.0, SAMPLE_RATE), SAMPLE_RATE, 2)
    reason = "the data is corrupt or not in an audio or video format FFmpeg knows"
    expect_error(
        b"ffconcat version 1.0\nfile 'secret.wav'\n", f"cannot load audio from the audio data: {reason}"
    )
    playlist = tmp_path / "list.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{tmp_path / 'secret.wav'}\n")
    expect_error(
        playlist,
        f"cannot load audio from '{playlist}': it is a playlist that refers to other files or URLs, "
        "which are not opened",
    )


def test_truncated_m4a_without_index_is_corrupt(tmp_path):
    path = tmp_path / "cut.m4a"
    encode_with_av(path, speech_like(1.0, 44100), 44100, "ipod", "aac")
    path.write_bytes(path.read_bytes()[:3000])  # the moov index sits at the end and is gone
    reason = "the data is corrupt or not in an audio or video format FFmpeg knows"
    expect_error(path, f"cannot load audio from '{path}': {reason}")


def test_chained_mp3s_with_different_rates(tmp_path):
    """A sample-rate change mid-stream (two mp3s back to back) decodes both halves, as ffmpeg does."""
    first, second, chained = tmp_path / "a.mp3", tmp_path / "b.mp3", tmp_path / "ab.mp3"
    encode_with_av(first, speech_like(1.0, 44100), 44100, "mp3", "libmp3lame")
    encode_with_av(second, chirp(1.0, 22050, high=3000.0), 22050, "mp3", "libmp3lame")
    chained.write_bytes(first.read_bytes() + second.read_bytes())
    audio = load_audio(chained)
    # measured: 2.08 s (the second file's LAME header frame decodes as a frame of silence)
    assert 2.0 <= len(audio) / SAMPLE_RATE <= 2.1
    assert best_correlation(audio[:SAMPLE_RATE], speech_like(1.0), max_lag=200) >= 0.9
    assert best_correlation(audio[SAMPLE_RATE:], chirp(1.0, high=3000.0)) >= 0.9


def test_truncated_mp3_keeps_what_decodes(tmp_path):
    path = tmp_path / "cut.mp3"
    encode_with_av(path, speech_like(2.0, 44100), 44100, "mp3", "libmp3lame")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert 0.5 <= len(load_audio(path)) / SAMPLE_RATE <= 1.5  # as ffmpeg does: decode up to the cut


def test_unsupported_codec(tmp_path):
    path = tmp_path / "odd.wav"
    path.write_bytes(wav_with_format_tag(0x1234))
    expect_error(path, f"cannot load audio from '{path}': its audio codec is not supported (no decoder)")


def test_no_audio_stream(tmp_path):
    image = tmp_path / "cover.png"
    image.write_bytes(png_bytes())
    expect_error(image, f"cannot load audio from '{image}': it has no audio stream (it holds only video)")
    silent_video = tmp_path / "silent.mp4"
    with av.open(str(silent_video), "w") as out:
        picture = out.add_stream("mpeg4", rate=25)
        picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            out.mux(
                picture.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24"))
            )
        out.mux(picture.encode())
    expect_error(
        silent_video, f"cannot load audio from '{silent_video}': it has no audio stream (it holds only video)"
    )


def test_no_samples(tmp_path):
    reason = "it holds no audio (shorter than one sample at 16000 Hz)"
    header_only = tmp_path / "zero.wav"
    write_wav(header_only, np.zeros(0), SAMPLE_RATE, 2)
    expect_error(header_only, f"cannot load audio from '{header_only}': {reason}")
    one_sample_44k = tmp_path / "tiny.wav"
    write_wav(one_sample_44k, np.full(1, 0.5), 44100, 2)  # 1/44100 s resamples to no 16 kHz sample
    expect_error(one_sample_44k, f"cannot load audio from '{one_sample_44k}': {reason}")
    one_sample = tmp_path / "one.wav"
    write_wav(one_sample, np.full(1, 0.5), SAMPLE_RATE, 2)
    assert load_audio(one_sample).tolist() == [0.5]
    expect_error(header_only.read_bytes(), f"cannot load audio from the audio data: {reason}")


def test_bad_sample_rate_argument(tmp_path):
    with pytest.raises(BadRequest, match="sample rate must be a positive number of Hz, got 0"):
        load_audio(b"RIFF", sr=0)


# ------------------------------------------------------------------------------------------------------------
# Real speech from Festival


def test_festival_speech_clip(tmp_path):
    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: apt-get install festival festvox-us-slt-hts")
    text = (
        "The quick brown fox jumps over the lazy dog while the little camel walks slowly across the desert."
    )
    path = tmp_path / "speech.wav"
    subprocess.run(
        ["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(path)],
        input=text.encode(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    with wave.open(str(path)) as reader:
        native_rate, native_frames = reader.getframerate(), reader.getnframes()
    audio = load_audio(path)
    assert abs(len(audio) - native_frames * SAMPLE_RATE / native_rate) <= 1
    words_per_second = len(text.split()) / (len(audio) / SAMPLE_RATE)
    assert 2.0 <= words_per_second <= 4.5  # measured: about 3
    assert 0.05 <= np.abs(audio).max() <= 1.0
    # What whisper's ffmpeg call would give (s16 rounding, same resampler): measured 1.5e-5.
    assert np.abs(audio - decode_like_ffmpeg(path)).max() <= 5e-5
    assert log_mel_spectrogram(path.read_bytes()).shape == (80, len(audio) // 160)


def test_open_files_decode_like_their_bytes(tmp_path):
    """A server hands over its spooled upload (a "w+b" file, on disk beyond 1 MB) instead of reading it into memory:
    the same samples as the bytes; an empty one is the same clear error."""
    import tempfile

    path = tmp_path / "clip.wav"
    write_wav(path, sine(12.0, 44100), 44100, 2)  # 1 MB of 16-bit samples
    data = path.read_bytes()
    expected = load_audio(data)
    with tempfile.SpooledTemporaryFile(max_size=1 << 20) as spool:
        spool.write(data)
        assert spool._rolled  # a disk file now, as Starlette's spool of a large upload
        assert np.array_equal(load_audio(spool, name="clip.wav"), expected)
    mp3 = tmp_path / "clip.mp3"
    mp3.write_bytes(b"\x00garbage" * 100)
    with mp3.open("rb") as file:
        expect_error(file, "cannot load audio from 'up.mp3': the data is corrupt or not in an audio or video format "
                     "FFmpeg knows", name="up.mp3")
    with tempfile.SpooledTemporaryFile() as empty:
        expect_error(empty, "cannot load audio from the audio data: it is empty")
