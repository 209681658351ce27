"""Loaded Whisper models, shared by the `transcribe` command and the server: resolve a name through the model
library (or a folder path), load once, transcribe with one clear error per bad input."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from camelid.errors import UnknownModel

DEFAULT_SPEECH_MODEL = "whisper:tiny.en"


@dataclass
class SpeechModel:
    name: str
    model: Any  # camelid.speech.model.Whisper
    tokenizer: Any  # camelid.speech.tokenizer.WhisperTokenizer
    config: dict[str, Any]
    lock: threading.Lock

    def transcribe(self, audio: Any, **options: Any) -> Any:
        """A Transcript (camelid.speech.writers) of a path, bytes, an open binary file or a float32 16 kHz array."""
        from camelid.speech.audio import load_audio
        from camelid.speech.transcribe import transcribe

        if not hasattr(audio, "dtype"):
            audio = load_audio(audio, name=options.pop("name", None))
        else:
            options.pop("name", None)
        with self.lock:  # one transcription per model at a time; the model's cache is not shared
            return transcribe(self.model, self.tokenizer, audio, **options)


_LOADED: dict[str, SpeechModel] = {}
_LOCK = threading.Lock()


def load_speech_model(name: str | os.PathLike | None = None, report: Any = None) -> SpeechModel:
    """A Whisper model by library name (pulled on first use) or folder/file path, loaded once per process."""
    from pathlib import Path

    from camelid.speech.loaders.detect import load_any
    from camelid.store.resolve import resolve

    key = str(name or DEFAULT_SPEECH_MODEL)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if Path(key).expanduser().exists():  # a folder or file in any supported format (ct2, hf, openai, ggml)
            source: Any = Path(key).expanduser()
            label = source.name
        else:
            source = resolve(key, report=report)
            if source.format != "ct2" or not source.files:
                raise UnknownModel(f"model '{key}' is not a Whisper model (try whisper:tiny.en or whisper:base)")
            label = source.name
        model, config, tokenizer = load_any(source)
        if tokenizer is None:
            raise UnknownModel(f"model '{key}' carries no vocabulary; put its tokenizer files beside it")
        loaded = SpeechModel(label, model, tokenizer, config, threading.Lock())
        _LOADED[key] = loaded
        return loaded
