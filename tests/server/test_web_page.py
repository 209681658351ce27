"""The web chat page served by `camelid serve` at `/`, driven in a real browser (Playwright + Debian chromium)
against a real server on a free port: pick a model, system prompt, a streamed answer with tokens/s, then Stop."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
MODEL = "smollm2:135m"
SERVER_CMD = [sys.executable, "-m", "camelid", "serve"]
STARTUP_TIMEOUT_S = 60
ANSWER_TIMEOUT_MS = 180_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with code {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"GET {url} did not answer 200 within {STARTUP_TIMEOUT_S} s:\n{log.read_text(errors='replace')}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    models = tmp_path / "models"
    models.mkdir()
    env = {**os.environ, "CAMELID_HOST": f"127.0.0.1:{port}", "CAMELID_MODELS": str(models)}
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(SERVER_CMD, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def page(server: str) -> Iterator[Page]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`sudo apt-get install chromium`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server)
            yield page
        finally:
            browser.close()


def assistant_text(page: Page, index: int) -> str:
    return page.locator("#messages .message.assistant").nth(index).text_content() or ""


def wait_for_assistant_text(page: Page, index: int) -> None:
    page.wait_for_function(
        "i => (document.querySelectorAll('#messages .message.assistant')[i]?.textContent || '').trim().length > 0",
        arg=index, timeout=ANSWER_TIMEOUT_MS, polling="raf")


def test_chat_page_streams_answers_and_stops(page: Page, tmp_path: Path) -> None:
    assert "camelid" in page.title().lower()
    expect(page.locator(f"#model option[value='{MODEL}']")).to_have_count(1, timeout=30_000)
    page.select_option("#model", MODEL)
    for element in ("#system", "#prompt", "#send", "#stop", "#new-chat", "#messages", "#stats"):
        expect(page.locator(element)).to_be_visible()
    expect(page.locator("#stop")).to_be_disabled()

    # First turn: the system prompt goes first, Enter sends, the answer streams in and ends with tokens/s.
    page.fill("#system", "Answer in one short sentence.")
    page.fill("#num-predict", "64")
    page.fill("#prompt", "Why is the sky blue?")
    with page.expect_request("**/api/chat") as first:
        page.press("#prompt", "Enter")
    body = first.value.post_data_json
    assert body["model"] == MODEL and body["stream"] is True
    assert body["options"] == {"num_predict": 64}
    assert body["messages"] == [{"role": "system", "content": "Answer in one short sentence."},
                                {"role": "user", "content": "Why is the sky blue?"}]
    expect(page.locator("#messages .message.user")).to_have_text(["Why is the sky blue?"])
    wait_for_assistant_text(page, 0)
    expect(page.locator("#stats")).to_contain_text("tokens/s", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#stats")).to_have_text(re.compile(r"^\d+\.\d tokens/s"))
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#send")).to_be_enabled()
    first_answer = assistant_text(page, 0)

    # Second turn: the whole conversation is sent; Stop after the first text keeps the partial answer.
    # (The system prompt and token limit are cleared so that the story runs long enough to be stopped.)
    page.fill("#system", "")
    page.fill("#num-predict", "")
    page.fill("#prompt", "Write a long story about a camel.")
    with page.expect_request("**/api/chat") as second:
        page.click("#send")
    assert second.value.post_data_json["messages"] == [
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": first_answer},
        {"role": "user", "content": "Write a long story about a camel."},
    ]
    wait_for_assistant_text(page, 1)
    expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")
    expect(page.locator("#send")).to_be_enabled(timeout=2_000)
    expect(page.locator("#stop")).to_be_disabled()
    partial = assistant_text(page, 1)
    page.wait_for_timeout(1_500)
    assert assistant_text(page, 1) == partial, "the answer kept growing after Stop"
    assert partial.strip()
    expect(page.locator("#messages .message.assistant")).to_have_count(2)
    expect(page.locator("#stats")).to_contain_text("Stopped")
    expect(page.locator("#error")).to_be_hidden()

    shot = tmp_path / "chat.png"
    page.screenshot(path=shot)
    assert shot.is_file() and shot.stat().st_size > 0

    # New chat clears the conversation.
    page.click("#new-chat")
    expect(page.locator("#messages .message")).to_have_count(0)
