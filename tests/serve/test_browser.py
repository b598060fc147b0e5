"""`anygpt serve` end to end in a real headless browser: Chromium from the system, driven by Playwright.

The server is the real command (`python -m anygpt.cli serve`) on a random tiny model. The page asks for speech, shows
its token count, stops it and shows a player for what was generated; uploads an image and gets a caption; asks for an
image and shows it; downloads the transcript; resets; sends a microphone recording; refuses a corrupt file with a
message, keeping the message in the box. The page fetches nothing but the server. Screenshots go to
``runs/tests/serve/``. Skipped only where no browser can be found (`.ci/run` installs Chromium).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "runs" / "tests" / "serve"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a microphone that beeps
TURN_SECONDS = 120  # a turn of the tiny model takes seconds; generous for a loaded 2-core machine


def _browser() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("no browser test: the playwright package is missing (pip install -e '.[dev]'; .ci/run does)")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no browser test: no Chromium found (apt-get install chromium; .ci/run installs it)")


@pytest.fixture
def served(tiny_export, free_port, tmp_path):
    """The real command in a subprocess; stopped with SIGTERM, which must remove its temporary folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "anygpt.cli", "serve", "--ckpt", str(tiny_export),
                             "--port", str(free_port), "--max_audio_seconds", "30"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{free_port}/"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(1)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    text = (tmp_path / "server.log").read_text()
    folder = re.search(r"kept in (\S+) until", text).group(1)
    assert not Path(folder).exists(), f"{folder} was not removed when the server stopped"
    assert "Traceback" not in text, text


def _wait_idle(page) -> None:
    """A turn is over when the message box is editable again."""
    page.wait_for_function("() => { const t = document.querySelector('#message textarea'); return t && !t.disabled }",
                           timeout=TURN_SECONDS * 1000)


def _send(page, text: str, files=(), output: str | None = None, while_running=None) -> None:
    if output:
        page.locator("#output").get_by_label(output, exact=True).check()
    if files:
        page.set_input_files("#message input[type=file]", [str(f) for f in files])
        page.wait_for_function(f"() => document.querySelectorAll('#message .thumbnail-item').length >= {len(files)}",
                               timeout=30_000)
    turns = page.locator("#chat .user-row").count()
    page.fill("#message textarea", text)
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelectorAll('#chat .user-row').length > {turns}", timeout=30_000)
    if while_running is not None:
        while_running(page)
    _wait_idle(page)


@pytest.mark.slow
def test_the_page_in_a_real_browser(served, uploads, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = _browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    outside = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(  # a fresh profile: --user-data-dir
            tmp_path / "profile", executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1100}, accept_downloads=True, permissions=["microphone"])
        try:
            page = browser.new_page()

            def only_the_server(route):
                if route.request.url.startswith(served):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_server)
            page.goto(served)
            page.wait_for_selector("#message textarea", timeout=60_000)
            bot = page.locator("#chat [data-testid='bot']")

            # text in -> speech, with a player; the turn shows its token count, and Stop keeps what was generated
            # (first: an empty context leaves the whole token budget, so the turn lasts long enough to be stopped)
            def stop_while_generating(page):
                page.get_by_text(re.compile(r"Generating: \d+ / \d+ tokens")).wait_for(timeout=TURN_SECONDS * 1000)
                page.locator("#stop").click()

            players = page.locator("#chat .bot-row [data-testid='waveform-Audio']")
            before = players.count()
            _send(page, "Say hello.", output="speech", while_running=stop_while_generating)
            players.nth(before).wait_for(timeout=30_000)  # a new player (media components render asynchronously)
            page.get_by_text("stopped: the reply keeps what was generated until then").wait_for(timeout=10_000)
            page.screenshot(path=str(SHOTS / "1-text-in-speech-out.png"))
            page.locator("#reset").click()  # the stopped reply may fill most of the tiny model's context
            page.wait_for_function("() => document.querySelectorAll('#chat .message-row').length == 0")

            # image in -> a caption
            replies = bot.count()
            _send(page, "Describe this image.", files=[uploads["image"]], output="auto")
            assert bot.count() > replies
            page.locator("#chat .user-row img").first.wait_for(timeout=30_000)  # the upload, shown
            assert bot.last.inner_text().strip()  # the random model's "caption"
            page.screenshot(path=str(SHOTS / "2-image-in-caption-out.png"))

            # text in -> an image, rendered
            replies = bot.count()
            _send(page, "Draw a red square.", output="image")
            image = page.locator("#chat [data-testid='bot'] img").last
            image.wait_for(timeout=30_000)
            assert bot.count() > replies
            assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", image.element_handle())
            page.screenshot(path=str(SHOTS / "3-text-in-image-out.png"))

            # the transcript, as `anygpt chat` writes it
            with page.expect_download() as download:
                page.locator("#transcript").click()
            archive = tmp_path / "transcript.zip"
            download.value.save_as(archive)
            with zipfile.ZipFile(archive) as z:
                page_html = z.read("anygpt-chat/transcript.html").decode()
            assert page_html.count('class="turn user"') == 2 and page_html.count("<img") >= 2  # upload, reply

            # Reset again; then a recording from the microphone (Chromium's fake one) goes in as speech
            page.locator("#reset").click()
            page.wait_for_function("() => document.querySelectorAll('#chat .message-row').length == 0")
            page.locator("#output").get_by_label("auto", exact=True).check()
            page.locator("#message [data-testid=microphone-button]").click()
            page.get_by_label("Start recording").click()
            page.wait_for_timeout(1500)
            page.get_by_label("Stop recording").click()
            page.get_by_label("Attach audio").click()
            page.wait_for_function("() => document.querySelectorAll('#message .thumbnail-item').length > 0",
                                   timeout=30_000)
            replies = bot.count()
            _send(page, "What did I say?")
            page.locator("#chat .user-row [data-testid='waveform-Audio']").last.wait_for(timeout=30_000)  # a player
            assert bot.count() > replies
            page.screenshot(path=str(SHOTS / "4-microphone-in.png"))

            # a corrupt upload -> a message that names it; the message stays in the box
            shown = bot.count()
            _send(page, "What is this?", files=[uploads["corrupt"]])
            toast = page.get_by_text("cannot read image file broken.png")
            toast.wait_for(timeout=30_000)
            assert page.input_value("#message textarea") == "What is this?" and bot.count() == shown
            page.screenshot(path=str(SHOTS / "5-corrupt-upload.png"))
        except Exception:
            page.screenshot(path=str(SHOTS / "failed.png"))  # the page as it was when the test failed
            raise
        finally:
            browser.close()
    assert outside == [], f"the page reached outside the server: {outside}"
