"""Make docs/serve/page.png, the README's picture of `anygpt serve`: image in -> caption, text in -> image, text in ->
speech with its player, in one conversation on the page, driven by a headless Chromium.

    python docs/serve/screenshot.py --ckpt runs/demo/export --out docs/serve/page.png

The page is the one `anygpt serve --ckpt CKPT` serves; --template and --task (its --prompt.template and
--prompt.task) default, as there, to what the checkpoint records (the demo export: chat template, messages as written).
"""

import argparse
import shutil
import socket
from pathlib import Path

from playwright.sync_api import sync_playwright

from anygpt.generation.options import PromptOptions  # noqa: E402
from anygpt.generation.pipeline import AnyGPT
from anygpt.serve.app import launch
from anygpt.serve.session import ModelHost

HERE = Path(__file__).resolve().parent
IMAGE = HERE.parent / "demo" / "chat" / "inputs" / "demo_test_002782.png"  # a demo test image (docs/demo/chat)
TURNS = [  # (message, files, output): prompts of docs/demo/chat_script.txt
    ("Describe this image.", [IMAGE], "auto"),
    ("Please make a picture of two big pink crosses on a gradient purple background.", [], "image"),
    ("Say this: the driver packed the camera behind the house early today", [], "speech"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="runs/demo/export")
    parser.add_argument("--out", default=str(HERE / "page.png"))
    parser.add_argument("--template", default=None, help="as `anygpt serve --prompt.template`")
    parser.add_argument("--task", default=None, help="as `anygpt serve --prompt.task`")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = AnyGPT.load(args.ckpt, prompt=PromptOptions(template=args.template))
    with ModelHost(engine, name=args.ckpt, task=args.task) as host:
        app = launch(host, port=port, block=False)
        try:
            shoot(f"http://127.0.0.1:{port}/", Path(args.out), host.root / "browser", args.seed)
        finally:
            app.close()
    print(f"wrote {args.out}")


def shoot(url: str, out: Path, profile: Path, seed: int) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=shutil.which("chromium"), headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1250})
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#message textarea", timeout=60_000)
        page.add_style_tag(content="#chat, #chat .wrapper, #chat .bubble-wrap { height: auto !important; "
                                   "max-height: none !important; }")  # the whole conversation in one picture
        page.get_by_label("Seed").fill(str(seed))
        for text, files, output in TURNS:
            page.locator("#output").get_by_label(output, exact=True).check()
            page.wait_for_timeout(300)  # the decoding knobs follow the preset of the chosen output
            if files:
                page.set_input_files("#message input[type=file]", [str(f) for f in files])
                page.wait_for_function("() => document.querySelectorAll('#message .thumbnail-item').length > 0")
            turns = page.locator("#chat .user-row").count()
            page.fill("#message textarea", text)
            page.keyboard.press("Enter")
            page.wait_for_function(f"() => document.querySelectorAll('#chat .user-row').length > {turns}")
            page.wait_for_function("() => !document.querySelector('#message textarea').disabled", timeout=600_000)
        page.mouse.move(0, 0)  # no hover highlight in the picture
        page.wait_for_timeout(1500)  # waveforms are drawn after the audio loads
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
