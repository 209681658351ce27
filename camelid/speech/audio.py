"""Audio front of speech-to-text: decode any audio or video file to 16 kHz mono float32, then the log-mel.

Follows openai-whisper's ``whisper/audio.py``: the same constants, ``pad_or_trim`` and the same log-mel steps,
so the features equal whisper's. Differences, on purpose:

- Decoding goes through PyAV (the FFmpeg libraries in-process), not an ``ffmpeg`` subprocess. Non-WAV input is
  down-mixed and resampled to mono s16 at ``sr`` by PyAV's ``AudioResampler``, as whisper's
  ``ffmpeg -ac 1 -ar 16000 -f s16le`` does, so those samples equal whisper's.
- Integer-PCM WAV (8/16/24/32-bit) is read with the stdlib ``wave`` module: channels are averaged and samples
  keep their full precision (no s16 rounding). A WAV not at ``sr`` goes through PyAV's resampler (float in,
  float out), FFmpeg's own filter. WAVs ``wave`` cannot read (float, WAVE_FORMAT_EXTENSIBLE, ADPCM …) take the
  PyAV path.
- The mel filterbank is computed here (``librosa.filters.mel``'s arithmetic: slaney scale and norm) rather
  than loaded from whisper's ``mel_filters.npz``.
- Every failure a user can cause raises :class:`AudioError` with one message naming the input and the reason.
"""

from __future__ import annotations

import io
import os
import wave
from functools import cache
from typing import BinaryIO, TypeVar

import av
import av.error
import numpy as np
import torch
import torch.nn.functional as F

from camelid.errors import BadRequest

# Whisper's hard-coded audio hyperparameters.
SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30-second chunk
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 frames in a mel spectrogram input
N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2  # the encoder's first convolutions have stride 2
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 10 ms per mel frame
TOKENS_PER_SECOND = SAMPLE_RATE // N_SAMPLES_PER_TOKEN  # 20 ms per audio token

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

_RESAMPLE_CHUNK = 1 << 20  # samples per frame handed to the resampler (bounds its temporary buffers)


class AudioError(BadRequest):
    """Unusable audio input: missing, empty, corrupt, an unsupported codec, no audio stream or no samples."""


# ------------------------------------------------------------------------------------------------------------
# Loading


def load_audio(source: AudioSource, sr: int = SAMPLE_RATE, *, name: str | None = None) -> np.ndarray:
    """Decode an audio or video file (a path, its raw bytes, or an open binary file) to mono float32 at ``sr`` Hz,
    in [-1, 1].

    ``name`` labels the input in error messages (e.g. an upload's filename); a path labels itself by default.
    Raises :class:`AudioError` with one clear message for anything wrong with the input.
    """
    if sr <= 0:
        raise BadRequest(f"sample rate must be a positive number of Hz, got {sr}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = f"'{name}'" if name else "the audio data"
        data = bytes(source)
        if not data:
            raise AudioError(f"cannot load audio from {label}: it is empty")
        audio = _decode(io.BytesIO(data), label, sr)
    elif hasattr(source, "read"):  # an open binary file (a server's spooled upload), read from its start
        label = f"'{name}'" if name else "the audio data"
        source.seek(0, os.SEEK_END)
        if source.tell() == 0:
            raise AudioError(f"cannot load audio from {label}: it is empty")
        source.seek(0)
        audio = _decode(source, label, sr)
    else:
        path = os.fspath(source)
        label = f"'{name or path}'"
        _check_file(path, label)
        try:
            with open(path, "rb") as file:
                audio = _decode(file, label, sr)
        except OSError as err:
            raise AudioError(f"cannot load audio from {label}: {err.strerror or err}") from None
    if audio.size == 0:
        raise AudioError(
            f"cannot load audio from {label}: it holds no audio (shorter than one sample at {sr} Hz)"
        )
    return audio


def _check_file(path: str, label: str) -> None:
    if not os.path.exists(path):
        raise AudioError(f"cannot load audio from {label}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"cannot load audio from {label}: it is a directory, not a file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"cannot load audio from {label}: the file is empty")


def _decode(file: BinaryIO, label: str, sr: int) -> np.ndarray:
    """PCM WAV through ``wave``; anything else (or a WAV ``wave`` rejects) through PyAV."""
    header = file.read(12)
    file.seek(0)
    if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
        pcm = _read_pcm_wav(file)
        if pcm is not None:
            samples, rate = pcm
            return samples if rate == sr else _resample(samples, rate, sr)
        file.seek(0)
    return _decode_with_av(file, label, sr)


def _read_pcm_wav(file: BinaryIO) -> tuple[np.ndarray, int] | None:
    """(mono float32 samples, sample rate) of an integer-PCM WAV, or None when ``wave`` cannot read it."""
    try:
        with wave.open(file, "rb") as reader:
            channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError, ValueError, OSError, ArithmeticError, RuntimeError):
        return None  # not PCM, or a damaged header (a chunk size past the end: RuntimeError): PyAV says which
    if channels < 1 or width not in (1, 2, 3, 4) or rate < 1:
        return None
    usable = len(frames) - len(frames) % (width * channels)
    samples = _pcm_to_float(np.frombuffer(frames, dtype=np.uint8, count=usable), width)
    samples = samples.reshape(-1, channels)  # [frames, channels]
    mono = samples[:, 0] if channels == 1 else samples.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _pcm_to_float(raw: np.ndarray, width: int) -> np.ndarray:
    """Little-endian integer PCM bytes -> float32 in [-1, 1). 8-bit WAV is unsigned, wider ones signed."""
    if width == 1:
        return (raw.astype(np.float32) - 128.0) / 128.0
    if width == 2:
        return raw.view("<i2").astype(np.float32) / 32768.0
    if width == 3:
        triples = raw.reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        values = (values << 8) >> 8  # sign-extend 24 -> 32 bits
        return values.astype(np.float32) / float(1 << 23)
    return raw.view("<i4").astype(np.float32) / float(1 << 31)


def _resample(samples: np.ndarray, rate: int, sr: int) -> np.ndarray:
    """Resample mono float32 with FFmpeg's resampler (PyAV), float in and float out."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
    pieces: list[np.ndarray] = []
    for start in range(0, len(samples), _RESAMPLE_CHUNK):
        chunk = np.ascontiguousarray(samples[start : start + _RESAMPLE_CHUNK])[None, :]  # [1, n]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = rate
        pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)


class _NestedOpenRefused(PermissionError):
    """Raised through FFmpeg when an input (an HLS playlist …) asks to open another file or URL."""


def _refuse_nested_open(url: str, flags: int, options: dict) -> None:
    raise _NestedOpenRefused(url)


# Inputs are decoded from memory or an already-open file: FFmpeg may open nothing else (no protocols for the
# nested opens of concat scripts, playlists …), PyAV's io_open hook refuses the rest: an upload can never
# make the server read a local file or fetch a URL.
_OPEN_OPTIONS = {"protocol_whitelist": "none"}


def _decode_with_av(file: BinaryIO, label: str, sr: int) -> np.ndarray:
    """The best audio stream as mono s16 at ``sr`` (whisper's ``ffmpeg -ac 1 -ar sr -f s16le``) in float32."""
    try:
        container = av.open(  # mode "r": PyAV would take a "w+b" file (a spooled upload) as an output
            file, mode="r", metadata_errors="ignore", io_open=_refuse_nested_open, container_options=_OPEN_OPTIONS
        )
    except _NestedOpenRefused:
        raise AudioError(
            f"cannot load audio from {label}: it is a playlist that refers to other files or URLs, "
            "which are not opened"
        ) from None
    except av.error.FFmpegError:
        reason = "the data is corrupt or not in an audio or video format FFmpeg knows"
        raise AudioError(f"cannot load audio from {label}: {reason}") from None
    with container:
        stream = container.streams.best("audio")
        if stream is None:
            kinds = sorted({s.type for s in container.streams})
            only = f" (it holds only {' and '.join(kinds)})" if kinds else ""
            raise AudioError(f"cannot load audio from {label}: it has no audio stream{only}")
        if stream.codec_context is None:
            raise AudioError(f"cannot load audio from {label}: its audio codec is not supported (no decoder)")
        chunks = _decode_stream(container, stream, sr)
    if chunks is None:
        raise AudioError(f"cannot load audio from {label}: the audio data is corrupt or truncated")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return samples.astype(np.float32) / 32768.0


def _decode_stream(container: av.container.InputContainer, stream: av.AudioStream, sr: int) -> list | None:
    """s16 sample chunks of ``stream``; None when it is corrupt before any sample decodes.

    Like the ffmpeg CLI, a packet that fails to decode is skipped, a demuxing error ends the stream early, and
    a change of rate, format or channel layout mid-stream (chained mp3s, radio streams) gets a new resampler.
    """
    chunks: list[np.ndarray] = []
    resampler, setup = None, None
    failures = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                failures += 1
                continue
            for frame in frames:
                frame_setup = (frame.format.name, frame.layout.name, frame.sample_rate)
                if frame_setup != setup:
                    chunks += _flush(resampler)
                    resampler, setup = av.AudioResampler(format="s16", layout="mono", rate=sr), frame_setup
                frame.pts = None  # timestamps restart with each chained file; samples are taken in order
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        chunks += _flush(resampler)
    except av.error.FFmpegError:
        failures += 1
    if failures and not any(len(chunk) for chunk in chunks):
        return None
    return chunks


def _flush(resampler: av.AudioResampler | None) -> list[np.ndarray]:
    return [] if resampler is None else [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]


# ------------------------------------------------------------------------------------------------------------
# Features


def pad_or_trim(array: ArrayT, length: int = N_SAMPLES, *, axis: int = -1) -> ArrayT:
    """Zero-pad or cut ``array`` (numpy or torch) along ``axis`` to ``length``, as the encoder expects."""
    size = array.shape[axis]
    if torch.is_tensor(array):
        if size > length:
            array = array.narrow(axis, 0, length)
        elif size < length:
            dim = axis % array.ndim
            pad = [0, 0] * (array.ndim - 1 - dim) + [0, length - size]  # F.pad lists the last dimension first
            array = F.pad(array, pad)
        return array
    if size > length:
        array = array.take(indices=range(length), axis=axis)
    elif size < length:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, length - size)
        array = np.pad(array, widths)
    return array


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    mels = hz / f_sp
    log_region = hz >= min_log_hz
    mels[log_region] = min_log_hz / f_sp + np.log(hz[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    hz = f_sp * mels
    log_region = mels >= min_log_mel
    hz[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return hz


@cache
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Mel filterbank [n_mels, N_FFT // 2 + 1] float32, read-only.

    ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`` (slaney scale, slaney norm), computed in the
    same order and precision so it equals librosa's float32 output. Whisper uses 80 mels, large-v3 128.
    """
    if n_mels < 1:
        raise ValueError(f"n_mels must be positive, got {n_mels}")
    fft_freqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)  # [201] bin centres in Hz
    limits = _hz_to_mel(np.array([0.0, SAMPLE_RATE / 2]))
    mel_freqs = _mel_to_hz(np.linspace(limits[0], limits[1], n_mels + 2))  # band edges in Hz
    band_widths = np.diff(mel_freqs)
    ramps = np.subtract.outer(mel_freqs, fft_freqs)  # [n_mels + 2, 201]
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for band in range(n_mels):
        rising = -ramps[band] / band_widths[band]
        falling = ramps[band + 2] / band_widths[band + 1]
        weights[band] = np.maximum(0, np.minimum(rising, falling))
    slaney_norm = 2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels])  # constant energy per band
    weights *= slaney_norm[:, None]  # in place on float32, as librosa does
    weights.flags.writeable = False
    return weights


@cache
def _mel_filters_tensor(n_mels: int) -> torch.Tensor:
    return torch.from_numpy(mel_filters(n_mels).copy())


def log_mel_spectrogram(
    audio: np.ndarray | torch.Tensor | AudioSource,
    n_mels: int = 80,
    padding: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Whisper's log-mel spectrogram of 16 kHz audio: [n_mels, frames], or [batch, n_mels, frames].

    ``audio`` is a waveform (numpy or torch, cast to float32) or anything :func:`load_audio` reads.
    ``padding`` zero samples are appended first. frames = (samples + padding) // HOP_LENGTH.
    """
    if not torch.is_tensor(audio):
        if isinstance(audio, (str, os.PathLike, bytes, bytearray, memoryview)):
            audio = load_audio(audio)
        array = np.asarray(audio, dtype=np.float32)
        audio = torch.from_numpy(array if array.flags.writeable else array.copy())
    audio = audio.to(device=device, dtype=torch.float32)
    if audio.shape[-1] + max(padding, 0) <= N_FFT // 2:
        needed = N_FFT // 2 + 1
        raise AudioError(
            f"audio is too short for a spectrogram: {audio.shape[-1]} samples, at least {needed} needed"
        )
    if padding > 0:
        audio = F.pad(audio, (0, padding))
    window = torch.hann_window(N_FFT, device=audio.device)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)  # [..., 201, frames + 1]
    magnitudes = stft[..., :-1].abs() ** 2  # drop the last frame, as whisper does

    filters = _mel_filters_tensor(n_mels).to(audio.device)  # [n_mels, 201]
    mel_spec = filters @ magnitudes  # [..., n_mels, frames]

    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)  # an 80 dB dynamic range below the loudest bin
    return (log_spec + 4.0) / 4.0
