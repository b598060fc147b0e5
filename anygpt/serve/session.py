"""What ``anygpt serve`` does, free of any web framework: one shared model, one `ChatSession` per visitor.

    host = ModelHost(AnyGPT.load("runs/demo/export"))
    session = host.session()
    result = session.send(TurnRequest("Describe this picture.", files=[Upload("cat.png")]))
    result.text, result.media, session.transcript_zip()

The model (weights, KV cache, tokenizers) is shared and generates for one request at a time (`ModelHost` holds the
lock); each session keeps its own history, folder and HTML transcript. Which modalities a visitor may ask for and which
files they may upload come from the loaded model. Uploads are checked before anything is tokenized (`UploadLimits`), and
every failure a visitor can cause is a `ServeError` whose message names the file and says what to do.
"""

from __future__ import annotations

import copy
import itertools
import re
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from anygpt.generation.chat import Transcript
from anygpt.generation.options import PRESETS, GenerationConfig
from anygpt.generation.pipeline import AnyGPT, Media, Part, Reply
from anygpt.generation.prompts import TASKS
from anygpt.media import MEDIA_KINDS, MediaError, audio_info, read_image

AUTO = "auto"  # let the model choose: no output marker is forced (the release's plain chat)
MB = 2**20


class ServeError(ValueError):
    """A request the page answers with a message (a bad upload, an unknown option, a prompt too long), not a crash."""


class TurnStopped(ServeError):
    """The visitor stopped a turn before it started (it was still waiting for the model)."""


@dataclass(frozen=True)
class UploadLimits:
    """What one request may upload; checked from file headers before anything is decoded."""

    max_bytes: int = 20 * MB
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 120.0
    max_files: int = 8


@dataclass(frozen=True)
class Upload:
    """A file a visitor sent; ``name`` is what they called it (the server's copy has another name)."""

    path: str | Path
    name: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or Path(self.path).name


@dataclass
class TurnRequest:
    """One message and how to answer it. Knobs left None use the preset of ``settings`` for the output modality;
    ``task`` (the release task prompt wrapping the message, `anygpt.generation.prompts.TASKS`) and ``constrained``
    (constrained decoding) left None use the server's.

    ``read_as`` says which modality reads uploads of a media kind that several modalities accept (an audio file is
    speech or music); by default the first such modality of the model does.
    """

    text: str = ""
    files: Sequence[Upload | str | Path] = ()
    output: str = AUTO
    settings: str = "release"
    task: str | None = None
    constrained: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    voice: Upload | str | Path | None = None
    read_as: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaFile:
    """A media file of a turn (an upload or a decoded reply) in the session folder."""

    modality: str
    path: Path
    kind: str  # its media kind (`anygpt.media.MEDIA_KINDS`), which says how a page shows it
    name: str  # what the visitor called it (uploads) or the file's name (replies)
    note: str | None = None  # a span that was decoded only partly says so


@dataclass
class TurnResult:
    turn: int
    text: str
    media: list[MediaFile]
    inputs: list[MediaFile]  # the visitor's uploads as the transcript keeps them
    notes: list[str]
    interrupted: bool


@dataclass
class Status:
    """Where the session's current turn is: waiting (for the model), tokenizing, generating, decoding or idle."""

    stage: str = "idle"
    done: int = 0
    total: int = 0

    def describe(self) -> str:
        if self.stage == "waiting":
            return "Waiting for the model (another request is running)…"
        if self.stage == "tokenizing":
            return f"Tokenizing the message ({self.total} media file{'s' * (self.total != 1)})…"
        if self.stage == "generating":
            return f"Generating: {self.done} / {self.total} tokens"
        if self.stage == "decoding":
            return f"Decoding media: {self.done + 1} of {self.total}"
        return ""


def file_kind(path: str | Path) -> str | None:
    """The media kind (`anygpt.media.MEDIA_KINDS`) a file's suffix says it is, None for none."""
    return next((kind.name for kind in MEDIA_KINDS.values() if kind.accepts(path)), None)


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB / 10 else f"{n / 1024:.1f} KB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 90 * 60 else f"{seconds / 3600:.1f} h"


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "file"
    return stem[-80:]


class ModelHost:
    """The loaded model shared by every session: one generation at a time, a temporary folder removed on `close`."""

    def __init__(self, engine: AnyGPT, limits: UploadLimits | None = None, root: str | Path | None = None,
                 name: str = "model", task: str | None = None) -> None:
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task prompt {task!r}; choose one of {', '.join(TASKS)}")
        self.engine = engine
        self.task = task or engine.task  # the task prompt of a request that names none (default: the checkpoint's)
        self.limits = limits or UploadLimits()
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix="anygpt-serve-") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._model_lock = threading.Lock()
        # modality -> media kind of its files, for the model's own tokenizers
        self.kinds = {name: modality.media.name for name, modality in engine.tokenizers.items()}
        self.settings_choices = sorted({key.split("/")[0] for key in PRESETS})
        self._sessions: dict[str, ChatSession] = {}

    # -- what the model offers -----------------------------------------------------------------------------------------
    @property
    def outputs(self) -> list[str]:
        """Output choices: ``auto`` (the model chooses) and each modality the model can decode."""
        return [AUTO, *(name for name in self.engine.tokenizers if name in self.engine.vocab.modalities)]

    def readers(self, kind: str) -> list[str]:
        """The modalities that read files of media ``kind``."""
        return [name for name, k in self.kinds.items() if k == kind]

    @property
    def upload_kinds(self) -> list[str]:
        """The media kinds some modality of the model reads."""
        return [kind for kind in dict.fromkeys(self.kinds.values()) if kind is not None]

    def accepted(self) -> str:
        """What may be uploaded, in words: each kind's suffixes and the modalities that read it."""
        return "; ".join(f"{kind} files ({' '.join(MEDIA_KINDS[kind].suffixes)}) for {' or '.join(self.readers(kind))}"
                         for kind in self.upload_kinds)

    def decoding(self, output: str, settings: str) -> GenerationConfig:
        """The preset a turn with these choices starts from (`AnyGPT.generation_config`)."""
        return self.engine.generation_config("text" if output == AUTO else output, settings)

    @property
    def context(self) -> int:
        return int(self.engine.model.config.block_size)

    @property
    def keeps_history(self) -> bool:
        """The chat template carries the conversation; the base (pretraining) template answers each message alone."""
        return self.engine.template == "chat"

    def describe(self) -> str:
        params = sum(p.numel() for p in self.engine.model.parameters())
        reads = ", ".join(f"{name} ({kind} files)" for name, kind in self.kinds.items())
        history = "" if self.keeps_history else " (each message answered on its own: the base template has no history)"
        return (f"{self.name}: {params / 1e6:.1f} M parameters, context {self.context} tokens; reads and writes "
                f"{reads}. Prompts: {self.engine.describe()}{history}")

    # -- sessions ------------------------------------------------------------------------------------------------------
    def session(self) -> ChatSession:
        session = ChatSession(self, uuid.uuid4().hex[:12])
        self._sessions[session.id] = session
        return session

    def _acquire(self, cancelled) -> bool:
        """Wait for the model; False if ``cancelled()`` turns true first."""
        while not self._model_lock.acquire(timeout=0.1):
            if cancelled():
                return False
        return True

    def _release(self) -> None:
        self._model_lock.release()

    def _forget(self, session: ChatSession) -> None:
        self._sessions.pop(session.id, None)

    def close(self) -> None:
        for session in list(self._sessions.values()):
            session.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ModelHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChatSession:
    """One visitor's conversation: its own history over the shared model, its folder and transcript.

    `send` runs one turn; `stop` stops the running turn (keeping what was generated) or one still waiting for the
    model; `status` says where the running turn is; `reset` starts over.
    """

    def __init__(self, host: ModelHost, session_id: str) -> None:
        self.host = host
        self.id = session_id
        self.folder = host.root / "sessions" / session_id
        # a view of the engine with its own history; model, vocabulary and tokenizers are shared
        self.engine = copy.copy(host.engine)
        self.engine.history = []
        self.transcript = self._new_transcript(f"AnyGPT chat with {host.name}")
        self.status = Status()
        self.turns = 0
        self.resets = 0  # how many times `reset` started over (a page drops a reply that finished after one)
        self.closed = False
        self._turn_lock = threading.Lock()  # one turn of this session at a time
        self._tickets = itertools.count()
        self._stop_below = 0  # requests with a ticket below this are stopped

    def _new_transcript(self, title: str) -> Transcript:
        """The HTML transcript `anygpt chat` writes, headed by how the server prompts (each turn notes its choices)."""
        kinds = {name: modality.media for name, modality in self.engine.tokenizers.items()}
        transcript = Transcript(self.folder, title, kinds)
        transcript.note(f"{self.host.engine.describe()}; anygpt serve")
        return transcript

    def __deepcopy__(self, memo: dict) -> ChatSession:
        """A session is a live handle (web frameworks deep-copy state values): copies share it."""
        return self

    # -- requests ------------------------------------------------------------------------------------------------------
    def ticket(self) -> int:
        """Number a request when it is submitted, so `stop` also reaches requests still queued."""
        return next(self._tickets)

    def stop(self) -> None:
        """Stop every request submitted so far: a running one keeps what it generated, a waiting one never starts."""
        self._stop_below = next(self._tickets)

    def send(self, request: TurnRequest, ticket: int | None = None) -> TurnResult:
        """Run one turn: check and tokenize the uploads, generate, decode, save the media and the transcript."""
        ticket = self.ticket() if ticket is None else ticket
        with self._turn_lock:
            if self.closed:
                raise ServeError("this session was closed; reload the page")
            turn = self.turns + 1
            output = self._check_choices(request)
            task = self.host.task if request.task is None else request.task
            constrained = self.host.engine.constrained if request.constrained is None else bool(request.constrained)
            overrides = self._overrides(request, output)
            voice = self._check_voice(request.voice)
            parts, inputs = self._stage_inputs(request, turn)
            generator = torch.Generator(device=self.engine.device).manual_seed(int(request.seed))
            stopped = lambda: ticket < self._stop_below  # noqa: E731
            self.status = Status("waiting")
            if not self.host._acquire(stopped):
                self.status = Status()
                self._unstage(inputs)
                raise TurnStopped("stopped before it started")
            try:
                self.engine.constrained = constrained  # this session's view of the engine
                reply = self.engine.chat(parts, output="text" if output == AUTO else output,
                                         settings=request.settings, generator=generator, voice=voice, task=task,
                                         progress=self._progress(stopped), **overrides)
            except (ValueError, FileNotFoundError) as err:
                self._unstage(inputs)
                raise ServeError(self._readable(str(err), inputs)) from err
            finally:
                self.host._release()
                self.status = Status()
            choices = [f"task prompt {task}", f"{request.settings} presets",
                       *(f"{key.replace('_', ' ')} {value}" for key, value in overrides.items()),
                       f"seed {request.seed}", f"constrained decoding {'on' if constrained else 'off'}"]
            return self._record(turn, parts, output, reply, inputs, ", ".join(choices))

    def _progress(self, stopped):
        def progress(stage: str, done: int, total: int) -> bool:
            self.status = Status(stage, done, total)
            return stopped()

        return progress

    def _record(self, turn: int, parts: list[Part], output: str, reply: Reply, inputs: list[MediaFile],
                choices: str) -> TurnResult:
        reply.save(self.folder, f"turn{turn:03d}", self.engine.tokenizers)
        self.transcript.add_user(parts, "text" if output == AUTO else output, choices)
        self.transcript.add_reply(reply)
        self.transcript.write()
        self.turns = turn
        media = [MediaFile(seg.modality, seg.path, self.host.kinds[seg.modality], seg.path.name, seg.note)
                 for seg in reply.media() if seg.path is not None]
        notes = [seg.note for seg in reply.segments if seg.note]
        if reply.interrupted:
            notes.append("stopped: the reply keeps what was generated until then")
        return TurnResult(turn, reply.text, media, inputs, notes, reply.interrupted)

    # -- checks --------------------------------------------------------------------------------------------------------
    def _check_choices(self, request: TurnRequest) -> str:
        if request.output not in self.host.outputs:
            raise ServeError(f"unknown output {request.output!r}; this model answers with {self.host.outputs}")
        if request.settings not in self.host.settings_choices:
            raise ServeError(f"unknown decoding preset {request.settings!r}; presets: {self.host.settings_choices}")
        if request.task is not None and request.task not in TASKS:
            raise ServeError(f"unknown task prompt {request.task!r}; choose one of {', '.join(TASKS)}")
        if not request.text.strip() and not request.files:
            raise ServeError("the message is empty: type something or attach a file")
        return request.output

    def _overrides(self, request: TurnRequest, output: str) -> dict:
        overrides: dict = {}
        if request.temperature is not None:
            if not request.temperature > 0:
                raise ServeError(f"temperature must be above 0, got {request.temperature}")
            overrides["temperature"] = float(request.temperature)
        if request.top_p is not None:
            if not 0 < request.top_p <= 1:
                raise ServeError(f"top-p must be in (0, 1], got {request.top_p}")
            overrides["top_p"] = float(request.top_p)
        if request.max_new_tokens is not None:
            if not 1 <= request.max_new_tokens <= self.host.context:
                raise ServeError(f"max new tokens must be between 1 and the model's context ({self.host.context}), "
                                 f"got {request.max_new_tokens}")
            overrides["max_new_tokens"] = int(request.max_new_tokens)
        return overrides

    def check_upload(self, upload: Upload) -> str:
        """The media kind of an upload, after checking its size and header against the limits."""
        limits, name, path = self.host.limits, upload.display_name, Path(upload.path)
        if not path.is_file():
            raise ServeError(f"{name}: the upload did not arrive (no file on the server); send it again")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ServeError(f"{name} is {_size(size)}; uploads are limited to {_size(limits.max_bytes)}")
        if size == 0:
            raise ServeError(f"{name} is empty (0 bytes)")
        kind = file_kind(name)
        if kind not in self.host.upload_kinds:
            raise ServeError(f"{name}: this model reads {self.host.accepted()}; "
                             f"{Path(name).suffix or 'a file without a suffix'} is none of them")
        try:
            if kind == "image":
                read_image(path, max_pixels=limits.max_image_pixels)  # decoded whole: a truncated file shows here
            elif kind == "audio":
                seconds, _, _ = audio_info(path)  # from the header
                if seconds > limits.max_audio_seconds:
                    raise ServeError(f"{name} lasts {_duration(seconds)}; audio is limited to "
                                     f"{_duration(limits.max_audio_seconds)}: cut it first")
        except MediaError as err:  # the server's copy has another name: say the visitor's
            raise ServeError(str(err).replace(str(path), name)) from err
        return kind

    def _check_voice(self, voice: Upload | str | Path | None) -> str | None:
        if voice is None:
            return None
        upload = voice if isinstance(voice, Upload) else Upload(voice)
        if self.check_upload(upload) != "audio":
            raise ServeError(f"the voice prompt {upload.display_name} is not an audio file")
        return str(upload.path)

    def _stage_inputs(self, request: TurnRequest, turn: int) -> tuple[list[Part], list[MediaFile]]:
        """Check every upload, then copy each into the session folder under a name the transcript keeps."""
        uploads = [f if isinstance(f, Upload) else Upload(f) for f in request.files]
        if len(uploads) > self.host.limits.max_files:
            raise ServeError(f"{len(uploads)} files attached; at most {self.host.limits.max_files} per message")
        checked = []
        for upload in uploads:
            kind = self.check_upload(upload)
            readers = self.host.readers(kind)
            modality = request.read_as.get(kind, readers[0])
            if modality not in readers:
                raise ServeError(f"{upload.display_name}: {modality!r} does not read {kind} files; choose one of "
                                 f"{readers}")
            checked.append((upload, kind, modality))
        parts: list[Part] = [request.text] if request.text.strip() else []
        inputs = []
        for i, (upload, kind, modality) in enumerate(checked):
            staged = self.folder / "inputs" / f"turn{turn:03d}-{i}-{_safe_name(upload.display_name)}"
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(upload.path, staged)
            parts.append(Media(modality, str(staged)))
            inputs.append(MediaFile(modality, staged, kind, upload.display_name))
        return parts, inputs

    @staticmethod
    def _unstage(inputs: list[MediaFile]) -> None:
        for item in inputs:
            item.path.unlink(missing_ok=True)

    def _readable(self, message: str, inputs: list[MediaFile]) -> str:
        """An error from the pipeline with the server's file names replaced by the visitor's."""
        for item in inputs:
            message = message.replace(str(item.path), item.name)
        if "context is" in message and self.turns:
            message += " Press Reset to start a new conversation."
        return message

    # -- the conversation ----------------------------------------------------------------------------------------------
    def transcript_zip(self) -> Path | None:
        """``transcript.html`` (the page ``anygpt chat`` writes) with its media, zipped; None before the first turn."""
        page = self.folder / "transcript.html"
        if not page.exists():
            return None
        target = self.host.root / "downloads" / self.id / f"anygpt-chat-{self.id}.zip"
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(self.folder.rglob("*")):
                if path.is_file():
                    archive.write(path, Path("anygpt-chat") / path.relative_to(self.folder))
        return target

    def reset(self) -> None:
        """Forget the conversation (history, transcript, files); a running turn is stopped first."""
        self.stop()
        with self._turn_lock:
            self.engine.history = []
            shutil.rmtree(self.folder, ignore_errors=True)
            self.transcript = self._new_transcript(self.transcript.page_title)
            self.turns = 0
            self.resets += 1

    def close(self) -> None:
        """Stop, and remove the session's files (the page closed or the server stops)."""
        self.stop()
        with self._turn_lock:
            self.closed = True
            shutil.rmtree(self.folder, ignore_errors=True)
            shutil.rmtree(self.host.root / "downloads" / self.id, ignore_errors=True)
        self.host._forget(self)
