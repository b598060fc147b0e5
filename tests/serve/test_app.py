"""The page's server and its HTTP API through Gradio's own client, as a script would use it (no browser)."""

import os
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from anygpt.generation.options import PRESETS
from anygpt.serve import serve
from anygpt.serve.session import ModelHost, UploadLimits

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(engine, tmp_path, free_port):
    from anygpt.serve.app import launch

    host = ModelHost(engine, UploadLimits(max_audio_seconds=2), root=tmp_path / "serve", name="tiny")
    app = launch(host, port=free_port, block=False)
    try:
        yield host, f"http://127.0.0.1:{free_port}/"
    finally:
        app.close()
        host.close()


@pytest.mark.slow
def test_the_api_runs_turns_like_the_page(server, uploads):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    host, url = server
    client = Client(url, verbose=False, download_files=str(host.root.parent / "client"))
    assert {"/chat", "/stop", "/reset"} <= set(client.view_api(print_info=False, return_format="dict")
                                               ["named_endpoints"])
    text, files, notes, transcript = client.predict(
        {"text": "Describe this image.", "files": [handle_file(str(uploads["image"]))]}, max_new_tokens=8,
        api_name="/chat")
    assert isinstance(text, str) and files == [] and zipfile.is_zipfile(transcript)
    _, files, _, transcript = client.predict({"text": "Draw a red square.", "files": []}, output="image",
                                             task="text-to-image", constrained=True, api_name="/chat")
    assert files and files[0].endswith(".png")
    _, files, _, _ = client.predict({"text": "Play this.", "files": [handle_file(str(uploads["speech"]))]},
                                    read_as=["music"], output="speech", max_new_tokens=40, api_name="/chat")
    assert files and files[0].endswith(".wav")
    with zipfile.ZipFile(transcript) as archive:  # the conversation of this client so far, its uploads included
        assert "anygpt-chat/inputs/turn001-0-photo.png" in archive.namelist()
    (session,) = host._sessions.values()
    assert session.turns == 3 and session.engine.history[4].parts[1].modality == "music"
    # uploads landed in the server's own temporary folder
    assert list((host.root / "gradio").rglob("photo.png"))

    for bad, message in [(uploads["corrupt"], "cannot read image file broken.png"),
                         (uploads["long"], "lecture.wav lasts 3.0 s; audio is limited to 2.0 s")]:
        with pytest.raises(AppError, match=message):
            client.predict({"text": "What is this?", "files": [handle_file(str(bad))]}, api_name="/chat")
    assert session.turns == 3
    client.predict(api_name="/reset")
    assert session.turns == 0 and session.engine.history == []


def test_serve_without_a_checkpoint_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/demo/export here, and (below) no shipped demo model either
    monkeypatch.setattr("anygpt.assets.assets_dir", lambda: tmp_path / "no-assets")
    with pytest.raises(SystemExit) as err:
        serve()
    assert "no checkpoint at runs/demo/export" in str(err.value)
    assert "anygpt fit --config experiments/demo/pretrain.yaml" in str(err.value)
    with pytest.raises(SystemExit, match="no checkpoint at elsewhere"):
        serve(ckpt="elsewhere")


def test_the_cli_has_serve_and_refuses_a_missing_checkpoint_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "anygpt.cli", "serve", "--port", "1", "--ckpt",
                             "runs/demo/export"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no checkpoint at runs/demo/export" in result.stderr


def test_serve_takes_the_option_groups_of_chat():
    """#22 item 4: ``--loading.*``, ``--prompt.*`` and ``--decoding.*`` as chat; the server's own flags stay."""
    result = subprocess.run([sys.executable, "-m", "anygpt.cli", "serve", "--help"], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    for flag in ("--loading.compile", "--loading.adapter", "--prompt.template", "--prompt.task", "--decoding.settings",
                 "--decoding.max_new_tokens", "--host", "--port", "--api_key", "--session_timeout", "--max_upload_mb"):
        assert flag in result.stdout, flag
    assert "  --template" not in result.stdout and "  --image_decoder" not in result.stdout


@pytest.fixture
def small_server(engine, tmp_path, free_port):
    """A server whose uploads are limited to 64 KB."""
    from anygpt.serve.app import launch

    host = ModelHost(engine, UploadLimits(max_bytes=64 * 1024), root=tmp_path / "serve", name="tiny")
    app = launch(host, port=free_port, block=False)
    try:
        yield host, f"http://127.0.0.1:{free_port}/"
    finally:
        app.close()
        host.close()


def _wait(condition, seconds: float = 30.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds
        time.sleep(0.02)


def test_stop_and_cancel_free_the_model_on_a_clients_first_turn(server, monkeypatch):
    """Defect 1: `/stop` reaches a client's first turn (its session is found by the client's session hash), and a job
    the client cancels stops at the next token instead of holding the model."""
    from gradio_client import Client

    host, url = server
    long = replace(PRESETS["release/chat-text"], num_beams=1, min_new_tokens=1000)  # turns of 1000 tokens
    monkeypatch.setitem(PRESETS, "release/chat-text", long)
    client = Client(url, verbose=False)
    long_turn = {"message": {"text": "say hello", "files": []}, "constrained": False, "max_new_tokens": 1000,
                 "api_name": "/chat"}
    job = client.submit(**long_turn)
    _wait(lambda: host.busy)
    client.predict(api_name="/stop")
    text, files, notes, transcript = job.result(timeout=30)
    assert any("stopped" in note for note in notes)
    (session,) = host.sessions
    assert session.turns == 1 and len(session.engine.history[-1].reply.ids) < 1000

    job = Client(url, verbose=False).submit(**long_turn)
    _wait(lambda: host.busy)
    job.cancel()
    _wait(lambda: not host.busy and host.interrupted == 2, 5)  # freed at the next token, not after 1000


def test_a_path_not_uploaded_and_an_oversized_upload_are_named(small_server, uploads, tmp_path):
    """Defect 5: a file path the client never uploaded gets Gradio's reason (not ``{"error": null}``); an upload over
    the limit gets a 413 that names the file."""
    import httpx

    host, url = small_server
    never_uploaded = {"path": str(uploads["image"]), "meta": {"_type": "gradio.FileData"}}
    data = [{"text": "What is this?", "files": [never_uploaded]}, "auto", [], None, "release", host.task, True, None,
            None, 4, 0, None]  # the /chat endpoint's inputs, its session state last
    event = httpx.post(f"{url}gradio_api/call/chat", json={"data": data}).json()["event_id"]
    answer = httpx.get(f"{url}gradio_api/call/chat/{event}", timeout=60).text
    assert "event: error" in answer and "photo.png" in answer and "was not uploaded" in answer, answer
    big = tmp_path / "holiday photo.png"
    big.write_bytes(b"\x89PNG" + bytes(200 * 1024))
    with open(big, "rb") as handle:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": (big.name, handle, "image/png")})
    assert response.status_code == 413
    assert "holiday photo.png is over the upload limit of 64.0 KB" in response.text
    assert host.sessions == [] or all(s.turns == 0 for s in host.sessions)


def test_serve_takes_a_hub_id_and_names_the_repository_when_it_is_not_cached(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "anygpt.cli", "serve", "--ckpt", "fnlp/AnyGPT-chat", "--port", "1"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "fnlp/AnyGPT-chat is not in the Hugging Face cache and HF_HUB_OFFLINE is set" in result.stderr
    assert "anygpt download fnlp/AnyGPT-chat" in result.stderr
