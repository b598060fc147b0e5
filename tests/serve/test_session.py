"""`anygpt serve`'s logic without a browser: turns, uploads and their limits, stopping, the shared model, cleanup."""

import copy
import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from anygpt.generation.options import DecodingOptions, PromptOptions
from anygpt.serve.session import (
    AUTO,
    ModelHost,
    ServeError,
    TurnRequest,
    TurnStopped,
    Upload,
    UploadLimits,
)


@pytest.fixture
def host(engine, tmp_path):
    with ModelHost(engine, root=tmp_path / "serve", name="tiny") as model_host:
        yield model_host


def test_the_servers_decoding_options_are_where_requests_start(engine, tmp_path):
    """#22 item 4: `anygpt serve --decoding.*` (the group chat and generate take) sets the preset family a request
    starts from and overrides of it; a request's own knobs win."""
    defaults = DecodingOptions(settings="paper", max_new_tokens=7, overrides={"top_p": 0.5})
    with ModelHost(engine, root=tmp_path / "a", defaults=defaults) as host:
        assert host.decoding("image", "paper").max_new_tokens == 7 and host.decoding("image", "paper").top_p == 0.5
        session = host.session()
        result = session.send(TurnRequest("describe this image", output="image", seed=1))
        assert len(result.reply.ids) <= 1 + 7  # the forced start marker and at most 7 new tokens
        page = (session.folder / "transcript.html").read_text()
        assert "paper presets" in page and "top p 0.5" in page
        longer = session.send(TurnRequest("describe this image", output="image", seed=1, max_new_tokens=12,
                                          settings="release"))
        assert 7 + 1 < len(longer.reply.ids) <= 12 + 1
    with pytest.raises(ValueError, match="unknown decoding settings 'fast'"):
        ModelHost(engine, root=tmp_path / "b", defaults=DecodingOptions(settings="fast"))
    with pytest.raises(ValueError, match="decoding overrides.*topp"):
        ModelHost(engine, root=tmp_path / "c", defaults=DecodingOptions(overrides={"topp": 0.5}))


def test_choices_come_from_the_loaded_model(engine, tmp_path):
    with ModelHost(engine, root=tmp_path / "a") as host:
        assert host.outputs == [AUTO, "image", "speech", "music"]
        assert host.kinds == {"image": "image", "speech": "audio", "music": "audio"}
        assert host.readers("audio") == ["speech", "music"] and host.upload_kinds == ["image", "audio"]
        assert {"release", "paper"} <= set(host.settings_choices)
    fewer = copy.copy(engine)
    fewer.tokenizers = {"image": engine.tokenizers["image"], "speech": engine.tokenizers["speech"]}
    with ModelHost(fewer, root=tmp_path / "b") as host:
        assert host.outputs == [AUTO, "image", "speech"] and host.readers("audio") == ["speech"]


def test_turns_with_uploads_and_each_output(host, uploads):
    session = host.session()
    first = session.send(TurnRequest("Describe this image.", files=[Upload(uploads["image"], "cat.png")],
                                     max_new_tokens=12))
    assert first.turn == 1 and isinstance(first.text, str) and not first.interrupted
    (staged,) = first.inputs
    assert (staged.modality, staged.kind, staged.name) == ("image", "image", "cat.png")
    assert staged.path.is_file() and staged.path.is_relative_to(session.folder)

    image = session.send(TurnRequest("Draw a red square.", output="image", seed=3))
    (picture,) = [m for m in image.media if m.modality == "image"][:1]
    size = session.engine.tokenizers["image"].codec.image_size
    assert picture.kind == "image" and Image.open(picture.path).size == (size, size)

    spoken = session.send(TurnRequest("Say hello.", output="speech", voice=uploads["speech"], max_new_tokens=60,
                                      files=[uploads["speech"]], read_as={"audio": "music"}))
    assert spoken.inputs[0].modality == "music"  # the visitor's choice for an audio upload
    speech = [m for m in spoken.media if m.modality == "speech"][0]
    assert speech.kind == "audio" and sf.info(str(speech.path)).samplerate == 16000

    # the shared engine keeps no history; the session keeps three turns of two messages
    assert host.engine.history == [] and len(session.engine.history) == 6 and session.turns == 3
    with zipfile.ZipFile(session.transcript_zip()) as archive:
        names = set(archive.namelist())
        page = archive.read("anygpt-chat/transcript.html").decode()
    assert {"anygpt-chat/transcript.html", "anygpt-chat/inputs/turn001-0-cat.png",
            f"anygpt-chat/{picture.path.name}", f"anygpt-chat/{speech.path.name}"} <= names
    assert 'src="inputs/turn001-0-cat.png"' in page and f'src="{speech.path.name}"' in page


@pytest.mark.parametrize("case, limits, expected", [
    ("corrupt", {}, "cannot read image file broken.png: cannot identify image file"),
    ("corrupt_audio", {}, "cannot read audio file broken.wav"),
    ("text", {}, "notes.txt: this model reads image files (.png .jpg .jpeg .webp .bmp .gif .tif .tiff) for image; "
                 "audio files (.wav .flac .ogg .mp3 .opus) for speech or music; .txt is none of them"),
    ("image", {"max_image_pixels": 40 * 40}, "image file photo.png is 64x48 pixels; at most 1,600 pixels"),
    ("bomb", {}, "cannot read image file bomb.png: Image size (10000000000 pixels) exceeds limit"),
    ("long", {"max_audio_seconds": 2}, "lecture.wav lasts 3.0 s; audio is limited to 2.0 s"),
    ("image", {"max_bytes": 1024}, "KB; uploads are limited to 1.0 KB"),
])
def test_bad_uploads_get_a_clear_message_and_lose_nothing(engine, uploads, tmp_path, case, limits, expected):
    with ModelHost(engine, UploadLimits(**limits), root=tmp_path / "serve") as host:
        session = host.session()
        server_copy = tmp_path / "gradio-cache" / uploads[case].name  # uploads arrive under another path
        server_copy.parent.mkdir()
        server_copy.write_bytes(uploads[case].read_bytes())
        with pytest.raises(ServeError) as err:
            session.send(TurnRequest("What is this?", files=[Upload(server_copy, uploads[case].name)]))
        assert expected in str(err.value) and str(server_copy.parent) not in str(err.value)
        assert session.turns == 0 and session.engine.history == []
        assert not list(session.folder.glob("inputs/*"))  # nothing staged is left behind
        ok = session.send(TurnRequest("What is this?", max_new_tokens=4))  # the session carries on
        assert ok.turn == 1


@pytest.mark.parametrize("request_args, expected", [
    ({"text": ""}, "the message is empty"),
    ({"output": "video"}, "unknown output 'video'"),
    ({"settings": "mine"}, "unknown decoding preset 'mine'"),
    ({"temperature": -0.5}, "temperature must be 0 (greedy) or above"),
    ({"top_p": 1.5}, "top-p must be in (0, 1]"),
    ({"max_new_tokens": 5000}, "max new tokens must be between 1 and the model's context (1024)"),
    ({"read_as": {"audio": "image"}, "files": ["speech"]}, "question.wav: 'image' does not read audio files"),
    ({"files": ["image", "image", "image"]}, "3 files attached; at most 2 per message"),
    ({"voice": "corrupt_audio"}, "cannot read audio file broken.wav"),
    ({"voice": "image"}, "the voice prompt photo.png is not an audio file"),
    ({"task": "poem"}, "unknown task prompt 'poem'; choose one of auto, none, text-to-image"),
])
def test_bad_requests_are_refused_before_generation(engine, uploads, tmp_path, request_args, expected):
    args = {"text": "hello", **request_args}
    args["files"] = [uploads[name] for name in args.get("files", [])]
    if "voice" in args:
        args["voice"] = uploads[args["voice"]]
    with ModelHost(engine, UploadLimits(max_files=2), root=tmp_path / "serve") as host:
        session = host.session()
        with pytest.raises(ServeError) as err:
            session.send(TurnRequest(**args))
        assert expected in str(err.value) and session.turns == 0


def test_a_prompt_longer_than_the_context_says_so(host, uploads):
    session = host.session()
    with pytest.raises(ServeError, match="the model's context is 1024"):
        session.send(TurnRequest("hello " * 1100))


def test_stop_keeps_what_was_generated(host, monkeypatch):
    session = host.session()
    progress = session._progress

    def stop_after_five(stopped):
        inner = progress(stopped)

        def hook(stage, done, total):
            if stage == "generating" and done == 5:
                session.stop()
            return inner(stage, done, total)

        return hook

    monkeypatch.setattr(session, "_progress", stop_after_five)
    result = session.send(TurnRequest("hello", max_new_tokens=200))
    assert result.interrupted and any("stopped" in note for note in result.notes)
    assert len(session.engine.history[-1].reply.ids) == 5  # the five tokens generated before the stop
    monkeypatch.undo()
    assert not session.send(TurnRequest("hello", max_new_tokens=8)).interrupted  # later turns are not stopped


def test_one_request_at_a_time_and_a_waiting_turn_can_be_stopped(host, uploads):
    first, second = host.session(), host.session()
    outcome = {}

    def send(session, key, ticket=None):
        try:
            outcome[key] = session.send(TurnRequest("hello", files=[uploads["image"]], max_new_tokens=4), ticket)
        except ServeError as err:
            outcome[key] = err

    host._model_lock.acquire()  # another visitor's request holds the model
    try:
        waiting = threading.Thread(target=send, args=(first, "first"))
        waiting.start()
        _wait_for(lambda: first.status.stage == "waiting")
        ticket = second.ticket()  # submitted, then stopped while still in the queue
        stopped = threading.Thread(target=send, args=(second, "second", ticket))
        stopped.start()
        _wait_for(lambda: second.status.stage == "waiting")
        second.stop()
        stopped.join(10)
        assert isinstance(outcome["second"], TurnStopped) and not stopped.is_alive()
        assert not list((second.folder / "inputs").glob("*"))  # its staged upload is gone
        time.sleep(0.3)
        assert waiting.is_alive() and "first" not in outcome
    finally:
        host._model_lock.release()
    waiting.join(60)
    assert outcome["first"].turn == 1 and second.turns == 0
    assert len(first.engine.history) == 2 and second.engine.history == []


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_reset_close_and_shutdown_remove_files(engine, uploads, tmp_path):
    host = ModelHost(engine, root=tmp_path / "serve")
    session = host.session()
    result = session.send(TurnRequest("Draw.", output="image", files=[uploads["image"]]))
    assert result.media and session.transcript_zip() is not None
    session.reset()
    assert session.turns == 0 and session.engine.history == [] and session.transcript_zip() is None
    assert not [p for p in session.folder.rglob("*") if p.is_file()]
    assert session.send(TurnRequest("hello", max_new_tokens=4)).turn == 1  # starts over at turn 1
    other = host.session()
    other.send(TurnRequest("hello", max_new_tokens=4))
    other.close()
    assert not other.folder.exists() and session.folder.exists()
    with pytest.raises(ServeError, match="closed"):
        other.send(TurnRequest("hello"))
    host.close()
    assert not host.root.exists()


def test_task_prompt_and_constrained_decoding_per_turn(host, uploads, monkeypatch):
    """A turn's task prompt and constrained decoding reach the pipeline and the transcript; the server's stay."""
    session = host.session()
    seen = []
    chat = session.engine.chat

    def spy(parts, **kwargs):
        seen.append((kwargs["task"], session.engine.constrained))
        return chat(parts, **kwargs)

    monkeypatch.setattr(session.engine, "chat", spy)
    session.send(TurnRequest("a red square", output="image", task="none", constrained=False, max_new_tokens=6))
    session.send(TurnRequest("Describe this image.", files=[uploads["image"]], max_new_tokens=4))
    assert seen == [("none", False), ("auto", True)] and host.engine.constrained
    page = (session.folder / "transcript.html").read_text()
    assert "template chat" in page  # how the server prompts, above the turns
    assert "asked for image output; task prompt none, release presets, max new tokens 6, seed 0, constrained " \
           "decoding off" in page and "task prompt auto" in page


def test_the_base_template_answers_each_message_alone(tiny_export, tmp_path):
    from anygpt.generation.pipeline import AnyGPT

    engine = AnyGPT.load(tiny_export, prompt=PromptOptions(template="base"))
    with ModelHost(engine, root=tmp_path / "serve", task="none") as host:
        assert not host.keeps_history and "no history" in host.describe()
        session = host.session()
        for _ in range(2):
            session.send(TurnRequest("hello", max_new_tokens=4))
        assert session.turns == 2 and session.engine.history == []
    with pytest.raises(ValueError, match="unknown task prompt 'poem'"):
        ModelHost(AnyGPT.load(tiny_export), root=tmp_path / "other", task="poem")


def test_a_session_survives_deep_copies(host):
    """Web frameworks deep-copy state values; a session is a live handle, never a copy of the model."""
    session = host.session()
    assert copy.deepcopy(session) is session


def test_idle_sessions_expire_with_their_files(engine, uploads, tmp_path):
    """Defect 2: sessions of clients that went away are freed (``--session_timeout``), their folders removed."""
    with ModelHost(engine, root=tmp_path / "serve", session_timeout=3600) as host:
        sessions = [host.session(key=f"client-{i}") for i in range(5)]
        for session in sessions:
            session.send(TurnRequest("hello", files=[uploads["image"]], max_new_tokens=2))
        assert all(s.folder.is_dir() for s in sessions) and host.session(key="client-0") is sessions[0]
        sessions[0].last_used = time.monotonic() + 10  # still in use
        assert sorted(host.expire(now=time.monotonic() + 3601)) == sorted(s.id for s in sessions[1:])
        assert host.sessions == [sessions[0]] and not any(s.folder.exists() for s in sessions[1:])
        assert all(s.expired for s in sessions[1:]) and host.find("client-1") is None
        assert host.session(key="client-1") is not sessions[1]  # a client that comes back starts afresh
    with ModelHost(engine, root=tmp_path / "quick", session_timeout=0.2) as host:  # the host's own timer
        session = host.session()
        session.send(TurnRequest("hello", max_new_tokens=2))
        deadline = time.monotonic() + 10
        while host.sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.sessions == [] and not session.folder.exists()
        with pytest.raises(ServeError, match="closed"):
            session.send(TurnRequest("hello"))


def test_durations_in_the_limit_message_are_not_rounded(engine, tmp_path):
    """Defect 3: a 130 s file "lasts 2 min 10 s", not "2 min"."""
    from anygpt.serve.uploads import duration_text

    assert [duration_text(s) for s in (42, 120, 130, 3725)] == ["42.0 s", "2 min", "2 min 10 s", "1 h 2 min 5 s"]
    lecture = tmp_path / "lecture.wav"
    sf.write(lecture, np.zeros(130 * 1000, dtype=np.float32), 1000)
    with ModelHost(engine, UploadLimits(max_audio_seconds=120), root=tmp_path / "serve") as host:
        with pytest.raises(ServeError, match="lecture.wav lasts 2 min 10 s; audio is limited to 2 min: cut it first"):
            host.session().send(TurnRequest("What is this?", files=[lecture]))


def test_a_reply_cut_inside_a_speech_span_leaves_a_working_history(host):
    """Defect 4: a spoken reply cut by the token budget enters the history closed, so later turns are prompted with
    no open span; the reply says it was cut."""
    session = host.session()
    session.engine.force_marker = True  # the reply opens a speech span at once
    cut = session.send(TurnRequest("say hello", output="speech", max_new_tokens=5))
    assert any("token budget" in note for note in cut.notes)
    vocab = session.engine.vocab
    assert not vocab.segments(cut.reply.ids)[-1].closed  # the reply itself was cut
    end = vocab.id_to_token(vocab.modalities["speech"].end_id)
    assert session.engine.history[-1].text.endswith(end)
    session.engine.force_marker = False
    prompt = session.engine.encode_prompt(session.engine.prompt_text(["and now?"], history=session.engine.history))
    assert all(seg.closed for seg in vocab.segments(prompt))
    later = session.send(TurnRequest("and now?", max_new_tokens=6))
    assert later.reply.ids and session.turns == 2


def test_the_model_is_granted_first_come_first_served():
    from anygpt.serve.lock import FairLock

    lock, order = FairLock(), []
    assert lock.acquire()
    threads = []
    for i in range(4):
        threads.append(threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release())))
        threads[-1].start()
        while lock.waiting < i + 1:
            time.sleep(0.01)
    gone = threading.Event()
    assert not lock.acquire(cancelled=lambda: gone.set() or True)  # a cancelled waiter leaves the queue
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3] and lock.waiting == 0 and not lock.held
