"""Issue 6's acceptance measures: tiny.en's word error rate over six clips spoken by Festival (one longer than
60 s) against faster-whisper's on the same CTranslate2 model, and base's language detection of German speech
(espeak-ng)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from camelid.speech.audio import SAMPLE_RATE, load_audio
from camelid.speech.metrics import word_edits
from camelid.speech.service import load_speech_model
from camelid.store import resolve

pytestmark = pytest.mark.slow

LONG = (
    "The camel is a large animal that lives in the deserts of Africa and Asia. "
    "It can walk for many days without drinking water, because its body uses water very carefully. "
    "People have travelled with camels for thousands of years, carrying salt, spices and cloth across the sand. "
    "A camel has long legs, a long neck and thick lips that let it eat dry and thorny plants. "
    "Its wide feet do not sink into the sand, and two rows of long eyelashes keep the dust out of its eyes. "
    "The hump stores fat, not water, and gives the animal energy when food is scarce. "
    "Today camels still help people in many places, and they are also raced for sport. "
    "In some countries camel milk is sold in shops, and it is said to be rich and healthy. "
    "Camels are calm and patient, but they can also be stubborn when they are tired or hungry. "
    "A young camel stays close to its mother for several years before it joins the herd. "
    "Travellers say that a camel remembers the way to water long after people have forgotten it."
)
TEXTS = [
    "Please call Stella and ask her to bring these things with her from the store.",
    "The weather today is sunny with a light breeze coming from the west.",
    "My brother bought a new bicycle last week and rode it to school every morning.",
    "The library will be closed on Monday because of the national holiday.",
    "We watched the sunset from the top of the hill and then walked home in the dark.",
    LONG,  # longer than sixty seconds
]


def festival(text: str, path: Path) -> np.ndarray:
    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: apt-get install festival festvox-us-slt-hts")
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(path)], input=text, text=True,
                   check=True, capture_output=True)
    return load_audio(path)


def test_tiny_en_word_error_rate_and_faster_whisper(tmp_path: Path) -> None:
    clips = [festival(text, tmp_path / f"clip{i}.wav") for i, text in enumerate(TEXTS)]
    assert max(len(c) for c in clips) > 60 * SAMPLE_RATE, "one clip must be longer than 60 s"
    speech = load_speech_model("whisper:tiny.en")
    folder = tmp_path / "tiny.en"
    folder.mkdir()
    for name, path in resolve("whisper:tiny.en").files.items():
        os.symlink(path, folder / name)
    from faster_whisper import WhisperModel  # test-only oracle

    peer = WhisperModel(str(folder), device="cpu", compute_type="float32", cpu_threads=2)
    ours = theirs = words = 0
    for text, audio in zip(TEXTS, clips):
        edits, n = word_edits(text, speech.transcribe(audio, beam_size=5).text)
        ours, words = ours + edits, words + n
        segments, _ = peer.transcribe(audio, beam_size=5, language="en")
        theirs += word_edits(text, " ".join(s.text for s in segments))[0]
    camelid_wer, peer_wer = ours / words, theirs / words
    print(f"\nWER over {len(TEXTS)} clips ({words} words): camelid {camelid_wer:.3f}, faster-whisper {peer_wer:.3f}")
    assert camelid_wer <= 0.12
    assert camelid_wer <= peer_wer + 0.01


def test_base_detects_german(tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: apt-get install espeak-ng")
    path = tmp_path / "german.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-w", str(path),
                    "Guten Morgen. Heute ist das Wetter sehr schön, und wir gehen zusammen in den Park."],
                   check=True, capture_output=True)
    speech = load_speech_model("whisper:base")
    transcript = speech.transcribe(str(path))
    assert transcript.language == "de", transcript.text
    english = speech.transcribe(str(path), task="translate")
    words = [w.strip(".,!?").lower() for w in english.text.split()]
    german = {"guten", "morgen", "heute", "ist", "das", "wetter", "sehr", "schön", "und", "wir", "gehen",
              "zusammen", "in", "den"}
    common_english = {"is", "the", "and", "we", "today", "weather", "morning", "good", "go", "very", "nice",
                      "beautiful", "it", "to", "together", "a", "of", "park", "are", "this"}
    assert english.language == "de" and words, english.text
    assert sum(w in german for w in words) <= 1 and any(w in common_english for w in words), english.text
