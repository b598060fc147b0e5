"""Models by hub id: the Hugging Face cache read offline (its real layout), the released AnyGPT by name with its
tokenizers loaded when first used, and a real download through huggingface_hub from a local endpoint."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from anygpt import hub
from anygpt.checkpoints import LazyCodec
from anygpt.generation.pipeline import AnyGPT
from benchmarks.judges.registry import load_judge
from tests.release_checkpoint import write_release_checkpoint

ROOT = Path(__file__).resolve().parents[1]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo: str, source: Path, revision: str = REVISION) -> Path:
    """Place ``source`` in a Hugging Face cache as huggingface_hub lays a download out: blobs by hash, a snapshot of
    links to them, and refs/main naming the revision."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / revision
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hub_ids_and_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.is_hub_id("fnlp/AnyGPT-chat") and hub.is_hub_id("org/name@v1.0")
    assert hub.split("org/name@v1.0") == ("org/name", "v1.0") and hub.split("org/name") == ("org/name", None)
    assert not any(hub.is_hub_id(n) for n in ("runs/demo/export", "./org/name", "model.ckpt", "name", "a/b.ckpt"))
    (tmp_path / "org" / "name").mkdir(parents=True)  # an existing folder is a path, never a hub id
    assert not hub.is_hub_id("org/name") and hub.local("org/name") == Path("org/name")


def test_a_checkpoint_by_hub_id_from_the_offline_cache(tiny_export, offline_cache):
    snapshot = cache_repo(offline_cache, "someone/tiny-anygpt", tiny_export)
    engine = AnyGPT.load("someone/tiny-anygpt")
    assert engine.bundle.model is not None and set(engine.tokenizers) == {"image", "speech", "music"}
    assert AnyGPT.load(f"someone/tiny-anygpt@{REVISION}").vocab.modalities.keys() == engine.vocab.modalities.keys()
    assert snapshot.is_dir()
    with pytest.raises(hub.HubError) as err:  # offline and not cached: which repository, and how to fetch it
        AnyGPT.load("someone/other-model")
    assert "someone/other-model is not in the Hugging Face cache and HF_HUB_OFFLINE is set" in str(err.value)
    assert "anygpt download someone/other-model" in str(err.value)
    with pytest.raises(hub.HubError, match="no revision 'v9'|not in the Hugging Face cache"):
        AnyGPT.load("someone/tiny-anygpt@v9")
    with pytest.raises(hub.HubError, match="asr judge someone/whisper: the repository someone/whisper is not in"):
        load_judge("asr", "someone/whisper")  # judges are named the same way


def test_the_release_by_name_loads_each_tokenizer_when_first_used(tmp_path, offline_cache):
    files = write_release_checkpoint(tmp_path / "downloads")
    cache_repo(offline_cache, "fnlp/AnyGPT-chat", files.chat)
    engine = AnyGPT.load("fnlp/AnyGPT-chat")  # no anygpt.json: the release's tokenizers by hub id, none loaded yet
    assert all(isinstance(t.codec, LazyCodec) and not t.codec.loaded for t in engine.tokenizers.values())
    reply = engine.chat("hello", max_new_tokens=4, generator=torch.Generator().manual_seed(0), num_beams=1)
    assert isinstance(reply.text, str)
    assert not any(t.codec.loaded for t in engine.tokenizers.values())  # text in, text out: nothing fetched
    with pytest.raises(hub.HubError, match="fnlp/AnyGPT-speech-modules is not in the Hugging Face cache"):
        engine.chat("say hello", output="speech", max_new_tokens=4)
    cache_repo(offline_cache, "fnlp/AnyGPT-speech-modules", files.speech_modules)
    spoken = engine.chat("say hello", output="speech", max_new_tokens=8, generator=torch.Generator().manual_seed(0))
    assert engine.tokenizers["speech"].codec.loaded and not engine.tokenizers["image"].codec.loaded
    assert spoken.ids
    # SEED needs BLIP-2's EVA ViT, published by URL: offline it comes from anygpt's file cache beside the hub's
    cache_repo(offline_cache, "AILab-CVC/seed-tokenizer-2", files.seed_quantizer.parent)
    with pytest.raises(hub.HubError, match="eva_vit_g.pth: not in"):
        engine.tokenizers["image"].codebook_size  # noqa: B018
    hub.cache_dir().mkdir(parents=True)
    shutil.copyfile(files.eva_vit, hub.cache_dir() / "eva_vit_g.pth")
    with pytest.raises(hub.HubError, match="image decoder stabilityai/stable-diffusion-2-1-unclip"):
        engine.tokenizers["image"].codebook_size  # noqa: B018
    cache_repo(offline_cache, "stabilityai/stable-diffusion-2-1-unclip", files.unclip)
    assert engine.tokenizers["image"].codebook_size == 8192 and engine.tokenizers["image"].codec.unclip is not None
    assert not engine.tokenizers["music"].codec.loaded


class FakeHub(BaseHTTPRequestHandler):
    """The two endpoints huggingface_hub's snapshot_download calls, over files in ``self.server.repos``."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        repos: dict[str, dict[str, bytes]] = self.server.repos
        path = self.path.split("?")[0]
        self.server.calls.append(f"{self.command} {path}")
        if path.startswith("/api/models/") and "/tree/" in path:
            repo, _, _ = path.removeprefix("/api/models/").partition("/tree/")
            tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in repos.get(repo, {}).items()]
            return self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
        if path.startswith("/api/models/"):
            repo, _, revision = path.removeprefix("/api/models/").partition("/revision/")
            if repo not in repos:
                return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound",
                                                                                "Content-Type": "application/json"})
            info = {"id": repo, "modelId": repo, "sha": REVISION, "private": False,
                    "siblings": [{"rfilename": name} for name in repos[repo]]}
            return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        if "/resolve/" in path:
            repo, _, rest = path.lstrip("/").partition("/resolve/")
            _, _, name = rest.partition("/")
            data = repos.get(repo, {}).get(name)
            if data is None:
                return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
            return self._send(200, data, {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Repo-Commit": REVISION,
                                          "Content-Type": "application/octet-stream"})
        self._send(404, b"", {})

    do_HEAD = do_GET  # noqa: N815


def test_a_real_download_through_huggingface_hub_from_a_local_endpoint(tiny_export, tmp_path):
    repo = {str(p.relative_to(tiny_export)): p.read_bytes() for p in tiny_export.rglob("*") if p.is_file()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.repos, server.calls = {"someone/tiny-anygpt": repo}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
           "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    copy = str(tmp_path / "offline-copy")
    script = ("from anygpt.hub import download; from anygpt.generation.pipeline import AnyGPT; "
              f"download('someone/tiny-anygpt', to={copy!r}); print('modalities', sorted(AnyGPT.load("
              "'someone/tiny-anygpt').tokenizers))")
    try:
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "modalities ['image', 'music', 'speech']" in result.stdout
        assert "someone/tiny-anygpt: " in result.stdout and " GB in " in result.stdout  # sizes printed
        snapshot = tmp_path / "hf" / "hub" / "models--someone--tiny-anygpt" / "snapshots" / REVISION
        assert sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()) == sorted(repo)
        assert (tmp_path / "offline-copy" / "someone--tiny-anygpt" / "config.json").is_file()
        assert any(c.startswith("GET /api/models/someone/tiny-anygpt") for c in server.calls)
        # then offline: the cache alone serves it, and an unknown repository is named
        env["HF_HUB_OFFLINE"] = "1"
        again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        missing = subprocess.run([sys.executable, "-m", "anygpt.cli", "chat", "--ckpt", "someone/absent"], env=env,
                                 capture_output=True, text=True, timeout=300)
        assert missing.returncode != 0 and "Traceback" not in missing.stderr
        assert "someone/absent is not in the Hugging Face cache" in missing.stderr
    finally:
        server.shutdown()
