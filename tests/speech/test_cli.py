"""`camelid transcribe`: files in, text and subtitle files out; one clear error per bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SENTENCE = "Camels can walk for days across the desert without drinking water."


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camelid", "transcribe", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_transcribe_writes_every_format(tmp_path: Path) -> None:
    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: apt-get install festival festvox-us-slt-hts")
    clip = tmp_path / "camels.wav"
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(clip)], input=SENTENCE,
                   text=True, check=True, capture_output=True)
    result = run(str(clip), "-o", "srt,vtt,txt,json", "--output-dir", str(tmp_path / "out"), "-t", "2")
    assert result.returncode == 0, result.stderr
    heard = {w.strip(".,").lower() for w in result.stdout.split()}
    assert len(heard & {w.strip(".").lower() for w in SENTENCE.split()}) >= 8, result.stdout
    out = tmp_path / "out"
    srt = (out / "camels.srt").read_text().splitlines()
    assert srt[0] == "1" and srt[1].startswith("00:00:") and "," in srt[1], srt
    assert (out / "camels.vtt").read_text().startswith("WEBVTT\n\n")
    assert json.loads((out / "camels.json").read_text())["language"] == "en"
    assert (out / "camels.txt").read_text().strip()


@pytest.mark.parametrize(("payload", "reason"), [(b"", "empty"), (b"\x00\x01" * 999, "corrupt")])
def test_bad_files_give_one_error(tmp_path: Path, payload: bytes, reason: str) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(payload)
    result = run(str(bad), "--output-dir", str(tmp_path))
    assert result.returncode == 1 and result.stderr.startswith("Error: ") and reason in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    missing = run(str(tmp_path / "nowhere.wav"))
    assert missing.returncode == 1 and "no such file" in missing.stderr
