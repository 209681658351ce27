"""Speech on the server: OpenAI's audio.transcriptions through the official client, the formats, whisper.cpp's
/inference, and one clear error per bad upload."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow
Server = Any  # tests/server/conftest.py: LiveServer
SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: apt-get install festival festvox-us-slt-hts")
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(path)], input=SENTENCE,
                   text=True, check=True, capture_output=True)
    return path


def words(text: str) -> set[str]:
    return {w.strip(".,!?").lower() for w in text.split()}


def test_openai_client_transcribes(live_server: Server, clip: Path) -> None:
    client = openai.OpenAI(base_url=live_server.base + "/v1", api_key="unused", max_retries=0)
    with clip.open("rb") as fh:
        result = client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert len(words(result.text) & words(SENTENCE)) >= 6, result.text
    with clip.open("rb") as fh:
        srt = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="srt")
    lines = str(srt).strip().splitlines()
    assert lines[0] == "1" and " --> " in lines[1] and lines[1][2] == ":" and "," in lines[1]
    start, end = (part.strip() for part in lines[1].split("-->"))
    assert start.count(":") == 2 and end.count(":") == 2 and start < end and lines[2].strip()


def test_formats_and_inference(live_server: Server, clip: Path) -> None:
    data = clip.read_bytes()
    verbose = httpx.post(live_server.url("/v1/audio/transcriptions"), timeout=120, files={"file": ("fox.wav", data)},
                         data={"response_format": "verbose_json"}).json()
    assert verbose["language"] == "en" and verbose["segments"] and verbose["segments"][0]["end"] > 0
    vtt = httpx.post(live_server.url("/v1/audio/transcriptions"), timeout=120, files={"file": ("fox.wav", data)},
                     data={"response_format": "vtt"}).text
    assert vtt.startswith("WEBVTT") and " --> " in vtt
    text = httpx.post(live_server.url("/inference"), timeout=120, files={"file": ("fox.wav", data)},
                      data={"response_format": "text", "temperature": "0.0"}).text
    assert len(words(text) & words(SENTENCE)) >= 6


@pytest.mark.parametrize(("name", "payload", "reason"), [
    ("empty.wav", b"", "empty"),
    ("noise.mp3", b"\x13\x37" * 2000, "corrupt"),
    ("odd-codec.wav", (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x34\x12\x01\x00\x80\x3e\x00\x00"
                       b"\x00\x7d\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"), "codec"),
])
def test_bad_uploads(live_server: Server, name: str, payload: bytes, reason: str) -> None:
    reply = httpx.post(live_server.url("/v1/audio/transcriptions"), timeout=60, files={"file": (name, payload)})
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert reason in message and name in message and "\n" not in message
