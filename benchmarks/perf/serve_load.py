"""A bounded load test of ``anygpt serve`` on loopback: N clients x T turns through the official ``openai`` client.

    python -m benchmarks.perf.serve_load --ckpt runs/demo/export --clients 8 --turns 5 --out runs/perf/serve_load.json
    python -m benchmarks.perf.serve_load --tiny ...   # a random tiny model with the shipped tiny tokenizers

Each client holds a conversation of ``turns`` turns cycling through text, an image (data URL), a speech recording
(``input_audio``), a spoken reply (``modalities: ["text", "audio"]``) and a streamed reply, all seeded. Every turn is
first answered alone (one client at a time), then all clients run at once: the replies must match the alone run turn
for turn (no cross-talk: each request sees only its own conversation), and none may fail. Reported: per-turn latency
under load (p50/p95), wall time, and the server's resident memory before the load, after it and after the
``--session_timeout`` has passed (sessions freed).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import torch
from PIL import Image

from anygpt.checkpoints import Bundle, save_bundle
from anygpt.modalities.registry import TokenizerRef
from anygpt.model.llama.config import Config
from anygpt.model.llama.model import LLaMA
from anygpt.text_tokenizer import train_bpe_tokenizer
from anygpt.vocab import UnifiedVocab

KIND_CYCLE = ("text", "image", "speech-in", "speech-out", "stream")


def tiny_export(folder: Path) -> Path:
    """A random tiny LLaMA with the shipped tiny tokenizers, saved as an export (what the serve tests load)."""
    text = train_bpe_tokenizer(["describe this image", "a red square", "say hello", "calm piano music"] * 20,
                               vocab_size=280, directory=folder / "text")
    refs = {name: TokenizerRef(f"anygpt-assets:tokenizers/{name}") for name in ("image", "speech", "music")}
    tokenizers = {name: ref.load(name) for name, ref in refs.items()}
    torch.manual_seed(0)
    vocab = UnifiedVocab(text, list(tokenizers.values()))
    model = LLaMA(Config.from_name("tiny", vocab_size=len(vocab), block_size=1024))
    return save_bundle(Bundle(model, vocab, tokenizers, None, refs, template="chat"), folder / "export")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="the model to serve (default with --tiny: a random tiny export)")
    parser.add_argument("--tiny", action="store_true", help="serve a random tiny model with the shipped tokenizers")


@contextlib.contextmanager
def served(args: argparse.Namespace, prefix: str, options: list[str] = ()) -> Iterator[tuple]:
    """``anygpt serve`` of ``--ckpt`` (or ``--tiny``) in its own process on a free loopback port until the block ends:
    the checkpoint, the process, the base URL of its ``/v1`` routes, an official ``openai`` client of them and the
    model's id (the log in ``server.log`` of a new ``prefix`` temporary folder)."""
    from openai import OpenAI

    work = Path(tempfile.mkdtemp(prefix=prefix))
    ckpt = args.ckpt or (str(tiny_export(work)) if args.tiny else None)
    if ckpt is None:
        raise SystemExit("give --ckpt PATH or --tiny")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "anygpt.cli", "serve", "--ckpt", ckpt, "--port", str(port),
                                   *options], stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
        base = f"http://127.0.0.1:{port}/v1"
        try:
            for _ in range(1200):
                if server.poll() is not None:
                    raise SystemExit(f"anygpt serve exited; see {work / 'server.log'}")
                try:
                    if httpx.get(f"{base}/models").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.25)
            client = OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=600)
            yield ckpt, server, base, client, client.models.list().data[0].id
        finally:
            server.terminate()
            server.wait(60)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def media(seed: int) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    png = io.BytesIO()
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(png, format="PNG")
    wav = io.BytesIO()
    t = np.arange(16000) / 16000
    sf.write(wav, (0.3 * np.sin(2 * np.pi * (150 + 20 * seed) * t)).astype(np.float32), 16000, format="WAV")
    return (f"data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}",
            base64.b64encode(wav.getvalue()).decode())


class Conversation:
    """One client's turns; ``run`` returns each reply (text, and a digest of its audio) and each turn's latency."""

    def __init__(self, client, model: str, index: int, turns: int, max_tokens: int) -> None:
        self.client, self.model, self.index, self.turns, self.max_tokens = client, model, index, turns, max_tokens
        self.image, self.wav = media(index)

    def run(self) -> tuple[list[str], list[float]]:
        messages: list[dict] = []
        replies, latencies = [], []
        for turn in range(self.turns):
            kind = KIND_CYCLE[(self.index + turn) % len(KIND_CYCLE)]
            content: list[dict] = [{"type": "text", "text": f"client {self.index} turn {turn}: say hello"}]
            extra: dict = {}
            if kind == "image":
                content.append({"type": "image_url", "image_url": {"url": self.image}})
            elif kind == "speech-in":
                content.append({"type": "input_audio", "input_audio": {"data": self.wav, "format": "wav"}})
            elif kind == "speech-out":
                extra = {"modalities": ["text", "audio"], "audio": {"voice": "default", "format": "wav"}}
            messages.append({"role": "user", "content": content})
            started = time.perf_counter()
            args = dict(model=self.model, messages=messages, max_tokens=self.max_tokens, seed=1000 * self.index + turn,
                        **extra)
            if kind == "stream":
                text = "".join(c.choices[0].delta.content or "" for c in
                               self.client.chat.completions.create(stream=True, **args) if c.choices)
                audio = None
            else:
                message = self.client.chat.completions.create(**args).choices[0].message
                text, audio = message.content or "", message.audio
            latencies.append(time.perf_counter() - started)
            replies.append(f"{kind}: {text.strip()!r} audio={len(audio.data) if audio else 0}")
            messages.append({"role": "assistant", "audio": {"id": audio.id}} if audio else
                            {"role": "assistant", "content": text})
        return replies, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_options(parser)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--max_tokens", type=int, default=40)
    parser.add_argument("--session_timeout", type=float, default=5.0)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    options = ["--session_timeout", str(args.session_timeout), "--max_queue", str(4 * args.clients)]
    with served(args, "serve-load-", options) as (ckpt, server, base, client, model):
        conversations = [Conversation(client, model, i, args.turns, args.max_tokens) for i in range(args.clients)]
        rss_start = rss_mb(server.pid)
        alone = [c.run()[0] for c in conversations]  # the reference: one client at a time
        rss_before = rss_mb(server.pid)
        results: list = [None] * args.clients
        failures: list[str] = []

        def run(i: int) -> None:
            try:
                results[i] = conversations[i].run()
            except Exception as err:  # counted and reported: the load test must show none
                failures.append(f"client {i}: {type(err).__name__}: {err}")

        started = time.perf_counter()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        rss_after = rss_mb(server.pid)
        crossed = [f"client {i} turn {t}" for i, r in enumerate(results) if r is not None
                   for t, (a, b) in enumerate(zip(alone[i], r[0], strict=True)) if a != b]
        latencies = sorted(x for r in results if r is not None for x in r[1])
        time.sleep(args.session_timeout * 1.5 + 1)
        status = httpx.get(f"{base}/anygpt/status").json()
        figures = {"ckpt": ckpt, "clients": args.clients, "turns": args.turns, "max_tokens": args.max_tokens,
                   "requests": len(latencies), "failures": failures, "cross_talk": crossed,
                   "distinct_replies": len({reply for replies in alone for reply in replies}),
                   "sample_replies": alone[0][:3],
                   "p50_s": round(statistics.median(latencies), 3),
                   "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
                   "wall_s": round(wall, 2), "rss_mb_at_start": round(rss_start, 1),
                   "rss_mb_before_load": round(rss_before, 1), "rss_mb_after_load": round(rss_after, 1),
                   "rss_mb_after_timeout": round(rss_mb(server.pid), 1), "sessions_after": status["sessions"],
                   "cpu_count": os.cpu_count()}
        print(json.dumps(figures, indent=1))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(figures, indent=1))
        if failures or crossed:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
