"""The page as `anygpt chat` (#23 items 7 and 8 on the page): a media kind's preview in the transcript instead of a
link, and ``/help``, ``/MODALITY`` and commands for modalities the model lacks read by chat's own parser."""

import io

import numpy as np
import pytest
from PIL import Image

import tests.third_party.depth_modality  # noqa: F401 - registers the depth modality (its word is known, not the model's)
from anygpt.media import MEDIA_KINDS, preview_png
from anygpt.serve.app import _reply_messages, _user_messages, page_command
from anygpt.serve.session import AUTO, MediaFile, ModelHost, ServeError, TurnResult


@pytest.fixture
def host(engine, tmp_path):
    with ModelHost(engine, root=tmp_path / "serve", name="tiny") as model_host:
        yield model_host


def test_a_kind_with_a_preview_shows_it_in_the_transcript(tmp_path):
    scan = tmp_path / "turn001-0.npy"
    np.save(scan, np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16))
    result = TurnResult(1, "a depth map", [MediaFile("depth", scan, "array", scan.name)], [], [], False)
    text, preview, file = [m["content"] for m in _reply_messages(result)]
    assert type(preview).__name__ == "Image" and type(file).__name__ == "File"
    shown = Image.open(preview.value["path"])
    expected = Image.open(io.BytesIO(preview_png(MEDIA_KINDS["array"], scan)))
    assert shown.size == expected.size and np.array_equal(np.asarray(shown), np.asarray(expected))
    assert file.value["path"].endswith("turn001-0.npy")
    # an upload of that kind, in the visitor's bubble, too; images and audio stay as they were shown
    shown_upload = [m["content"] for m in _user_messages({"text": "", "files": [str(scan)]})]
    assert type(shown_upload[0]).__name__ == "Image" and _user_messages({"files": ["a.png"]})[0]["content"] == {
        "path": "a.png"}


def test_page_commands_are_chats(host):
    assert page_command("describe /this", host) == (None, "describe /this", None)
    assert page_command("/image a red square", host) == ("image", "a red square", None)
    assert page_command("/text say hello", host) == (AUTO, "say hello", None)
    _, _, answer = page_command("/help", host)
    assert "/image MESSAGE" in answer and "/speech MESSAGE" in answer and "/music MESSAGE" in answer
    assert "/depth" not in answer and "[image: FILE]" in answer
    assert page_command("/reset", host) == (None, "", "/reset")
    with pytest.raises(ServeError, match="this model has no depth modality, so /depth cannot ask for depth output"):
        page_command("/depth a wall", host)
    with pytest.raises(ServeError, match="unknown command /imgae; did you mean /image?"):
        page_command("/imgae a cat", host)
    with pytest.raises(ServeError, match="close the page"):
        page_command("/quit", host)


def test_page_commands_through_the_pages_api(engine, tmp_path, free_port):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from anygpt.serve.app import launch

    host = ModelHost(engine, root=tmp_path / "serve", name="tiny")
    app = launch(host, port=free_port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{free_port}/", verbose=False, download_files=str(tmp_path / "client"))
        text, files, _, _ = client.predict({"text": "/help", "files": []}, api_name="/chat")
        assert "/image MESSAGE" in text and files == []
        _, files, _, _ = client.predict({"text": "/image a red square", "files": []}, task="text-to-image",
                                        api_name="/chat")  # the command, not the output choice (auto), asks
        assert files and files[0].endswith(".png")
        with pytest.raises(AppError, match="this model has no depth modality"):
            client.predict({"text": "/depth a wall", "files": []}, api_name="/chat")
        (session,) = host.sessions
        assert session.turns == 1 and "/image" not in session.engine.history[0].text  # the command is not sent
    finally:
        app.close()
        host.close()


def test_the_api_carries_a_kinds_mime_type_and_preview(host, tmp_path):
    import base64

    from anygpt.serve.api import OpenAIRoutes

    scan = tmp_path / "turn001-0.npy"
    np.save(scan, np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16))
    result = TurnResult(1, "a depth map", [MediaFile("depth", scan, "array", scan.name)], [], [], False)
    message, _, _ = OpenAIRoutes(host)._message(host.session(), result, AUTO, 10)
    (item,) = message["media"]
    assert item["mime_type"] == "application/octet-stream" and base64.b64decode(item["data"]) == scan.read_bytes()
    assert base64.b64decode(item["preview"]) == preview_png(MEDIA_KINDS["array"], scan) and message.get("audio") is None
