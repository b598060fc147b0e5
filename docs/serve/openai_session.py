"""The README's session with the official `openai` client, as a script: run it against a running `anygpt serve`.

    anygpt serve --ckpt runs/demo/export --port 7860 &
    python docs/serve/openai_session.py --base_url http://127.0.0.1:7860/v1 --out runs/openai-session

It prints each reply (and what came back besides text) and writes the spoken, streamed and generated media to --out.
"""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path

from openai import OpenAI

IMAGE = Path(__file__).resolve().parents[1] / "demo/chat/inputs/demo_test_002782.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_url", default="http://127.0.0.1:7860/v1")
    parser.add_argument("--api_key", default="unused")
    parser.add_argument("--out", type=Path, default=Path("runs/openai-session"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    client = OpenAI(base_url=args.base_url, api_key=args.api_key)
    model = client.models.list().data[0].id
    print(f"model: {model}")

    start = time.perf_counter()
    image = base64.b64encode(IMAGE.read_bytes()).decode()
    reply = client.chat.completions.create(model=model, max_tokens=60, seed=0, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Describe this image."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]}])
    print(f"image in -> text ({time.perf_counter() - start:.2f} s): {reply.choices[0].message.content!r}")

    start, pieces = time.perf_counter(), []
    ask = [{"role": "user", "content": "Write a caption for a calm piano piece."}]
    for chunk in client.chat.completions.create(model=model, stream=True, seed=0, max_tokens=40, messages=ask):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    print(f"streamed text ({len(pieces)} pieces, {time.perf_counter() - start:.2f} s): {''.join(pieces)!r}")

    start = time.perf_counter()
    say = [{"role": "user", "content": "Say this: the driver packed the camera"}]
    spoken = client.chat.completions.create(model=model, modalities=["text", "audio"], seed=0,
                                            audio={"voice": "default", "format": "wav"}, messages=say)
    wav = base64.b64decode(spoken.choices[0].message.audio.data)
    (args.out / "spoken.wav").write_bytes(wav)
    print(f"text -> speech ({time.perf_counter() - start:.2f} s): {len(wav)} bytes of WAV, transcript "
          f"{spoken.choices[0].message.audio.transcript!r}")

    start, pcm, first = time.perf_counter(), b"", None
    for chunk in client.chat.completions.create(model=model, stream=True, modalities=["text", "audio"], seed=0,
                                                audio={"voice": "default", "format": "pcm16"},
                                                messages=[{"role": "user", "content": "Say this: hello"}]):
        if chunk.choices and chunk.choices[0].delta.audio and chunk.choices[0].delta.audio.data:
            first = first or time.perf_counter() - start
            pcm += base64.b64decode(chunk.choices[0].delta.audio.data)
    (args.out / "streamed.pcm").write_bytes(pcm)
    print(f"streamed speech: first audio after {first or 0:.2f} s, {len(pcm) // 2} samples in "
          f"{time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    png = base64.b64decode(client.images.generate(model=model, prompt="a red square").data[0].b64_json)
    (args.out / "image.png").write_bytes(png)
    print(f"text -> image ({time.perf_counter() - start:.2f} s): {len(png)} bytes of PNG")


if __name__ == "__main__":
    main()
