"""`camelid run` one-shot (argument and piped stdin), the interactive REPL, and `camelid generate`."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import camelid
from camelid.cli.repl import Repl
from camelid.cli.run import split_words

pytestmark = pytest.mark.slow


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "camelid", *args], input=stdin, capture_output=True, text=True,
                          timeout=300, check=False)


def test_split_words() -> None:
    assert split_words([]) == (None, "")
    assert split_words(["Why is the sky blue?"]) == (None, "Why is the sky blue?")
    assert split_words(["smollm2:135m"]) == ("smollm2:135m", "")
    assert split_words(["smollm2", "hi", "there"]) == ("smollm2", "hi there")
    assert split_words(["model.gguf", "hi"]) == ("model.gguf", "hi")


def test_run_one_shot_answers_sky_question() -> None:
    result = run_cli("run", "Why is the sky blue?", "--temperature", "0", "--num-predict", "60", "--verbose")
    assert result.returncode == 0, result.stderr
    answer = result.stdout.lower()
    assert any(word in answer for word in ("scatter", "light", "wavelength", "atmosphere")), answer
    assert "eval rate:" in result.stderr and "prompt eval count:" in result.stderr


def test_run_reads_piped_stdin() -> None:
    result = run_cli("run", "smollm2:135m", "--temperature", "0", "--num-predict", "12",
                     stdin="What is the capital of France? Answer in one word.")
    assert result.returncode == 0, result.stderr
    assert "paris" in result.stdout.lower()


def test_generate_llama_cpp_flags() -> None:
    result = run_cli("generate", "-m", "smollm2:135m", "-p", "The capital of France is", "-n", "6",
                     "--temp", "0", "-t", "1", "-c", "256", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The capital of France is")
    assert "Paris" in result.stdout
    assert "eval:" in result.stderr


def test_repl_commands_and_conversation() -> None:
    llm = camelid.load("smollm2:135m")
    lines = iter([
        "/set parameter temperature 0",
        "/set parameter num_predict 16",
        "/set system You are a terse assistant.",
        "/show info",
        '"""What is',
        'the capital of France?"""',
        "/show parameters",
        "/clear",
        "/nonsense",
        "/bye",
    ])

    def read(prompt: str) -> str:
        return next(lines)

    out = io.StringIO()
    repl = Repl(llm, read=read, out=out)
    repl.loop()
    text = out.getvalue()
    assert "Set parameter 'temperature' to '0'" in text
    assert "Set system message." in text
    assert "architecture" in text and "llama" in text and "Q4_1" in text
    assert "Paris" in text
    assert '"num_predict": "16"' in text
    assert "Cleared session context" in text and repl.messages == []
    assert "Unknown command" in text
