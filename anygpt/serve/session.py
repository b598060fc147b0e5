"""What ``anygpt serve`` does, free of any web framework: one shared model, one `ChatSession` per visitor.

    session = ModelHost(AnyGPT.load("runs/demo/export")).session()
    result = session.send(TurnRequest("Describe this picture.", files=[Upload("cat.png")]))

The model is shared and generates for one request at a time, first come, first served (`ModelHost`); each session
keeps its own history, folder and transcript. What may be asked for and uploaded comes from the loaded model; every
failure a visitor can cause is a `ServeError` whose message names the file and says what to do.
"""

from __future__ import annotations

import copy
import itertools
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from anygpt.generation.chat import Transcript
from anygpt.generation.options import PRESETS, DecodingOptions, GenerationConfig
from anygpt.generation.pipeline import AnyGPT, Media, Part, Reply
from anygpt.media import MEDIA_KINDS
from anygpt.prompts import TASKS
from anygpt.serve.lock import FairLock
from anygpt.serve.uploads import (  # noqa: F401 - MB, file_kind, TurnStopped: part of this module's interface
    MB,
    Busy,
    ServeError,
    TurnStopped,
    Upload,
    UploadLimits,
    check_upload,
    file_kind,
    safe_name,
)

AUTO = "auto"  # let the model choose: no output marker is forced (the release's plain chat)


@dataclass
class TurnRequest:
    """One message and how to answer it. Knobs left None use the preset of ``settings`` for the output modality;
    ``task`` (the release task prompt wrapping the message, `anygpt.prompts.TASKS`) and ``constrained``
    (constrained decoding) left None use the server's.

    ``read_as`` says which modality reads uploads of a media kind that several modalities accept (an audio file is
    speech or music); by default the first such modality of the model does.
    """

    text: str = ""
    files: Sequence[Upload | str | Path] = ()
    output: str = AUTO
    settings: str | None = None  # the preset family; None: the server's (``--decoding.settings``)
    task: str | None = None
    constrained: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int = 0
    voice: Upload | str | Path | None = None
    num_beams: int | None = None
    min_new_tokens: int | None = None
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
    reply: Reply | None = None  # what the pipeline returned (its ids, the prompt's length)


@dataclass
class Status:
    """Where the session's current turn is: waiting (for the model), tokenizing, generating, decoding or idle."""

    stage: str = "idle"
    done: int = 0
    total: int = 0

    def describe(self) -> str:
        return {"waiting": "Waiting for the model (another request is running)…",
                "tokenizing": f"Tokenizing the message ({self.total} media file{'s' * (self.total != 1)})…",
                "generating": f"Generating: {self.done} / {self.total} tokens",
                "decoding": f"Decoding media: {self.done + 1} of {self.total}"}.get(self.stage, "")


class ModelHost:
    """The loaded model shared by every session: one generation at a time, a temporary folder removed on `close`."""

    def __init__(self, engine: AnyGPT, limits: UploadLimits | None = None, root: str | Path | None = None,
                 name: str = "model", task: str | None = None, session_timeout: float | None = None,
                 max_waiting: int | None = None, defaults: DecodingOptions = DecodingOptions()) -> None:
        if task is not None and task not in TASKS:
            raise ValueError(f"unknown task prompt {task!r}; choose one of {', '.join(TASKS)}")
        self.engine = engine
        self.task = task or engine.task  # the task prompt of a request that names none (default: the checkpoint's)
        self.limits = limits or UploadLimits()
        self.name = name
        if defaults.settings not in (choices := sorted({key.split("/")[0] for key in PRESETS})):
            raise ValueError(f"unknown decoding settings {defaults.settings!r}; presets: {choices}")
        self.defaults = defaults  # the preset family a request starts from, its overrides, the page's first seed
        try:
            engine.generation_config("text", defaults.settings, **defaults.generation_overrides())
        except TypeError as err:  # an override that names no field of GenerationConfig
            raise ValueError(f"decoding overrides {defaults.overrides}: {err}") from None
        self.root = Path(tempfile.mkdtemp(prefix="anygpt-serve-") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._model_lock = FairLock()
        self.max_waiting = max_waiting  # more requests waiting than this are turned away (`Busy`)
        self.session_timeout = session_timeout  # seconds idle before a session and its files are removed
        self._closing = threading.Event()
        if session_timeout is not None:
            if not session_timeout > 0:
                raise ValueError(f"session_timeout must be above 0 seconds, got {session_timeout}")
            threading.Thread(target=self._expire_loop, daemon=True, name="anygpt-serve-expiry").start()
        # modality -> media kind of its files, for the model's own tokenizers
        self.kinds = {name: modality.media.name for name, modality in engine.tokenizers.items()}
        self.settings_choices = choices
        self._sessions: dict[str, ChatSession] = {}
        self._keyed: dict[str, ChatSession] = {}  # a client's key (Gradio's session hash) -> its session
        self._sessions_lock = threading.Lock()
        self.interrupted = 0  # turns stopped before their end (a stop, a client gone)

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
        """The preset a turn starts from (`AnyGPT.generation_config`), with the server's overrides."""
        return self.engine.generation_config("text" if output == AUTO else output, settings,
                                             **self.defaults.generation_overrides())

    context = property(lambda self: int(self.engine.model.config.block_size))  # the model's context, in tokens

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
    def session(self, key: str | None = None) -> ChatSession:
        """A new session; with ``key`` (a client's id), that client's open session if it has one."""
        with self._sessions_lock:
            if key is not None and key in self._keyed and not self._keyed[key].closed:
                return self._keyed[key]
            session = ChatSession(self, uuid.uuid4().hex[:12])
            self._sessions[session.id] = session
            if key is not None:
                self._keyed[key] = session
            return session

    def find(self, key: str | None) -> ChatSession | None:
        """The open session of a client's key, if any."""
        session = self._keyed.get(key or "")
        return session if session is not None and not session.closed else None

    sessions = property(lambda self: list(self._sessions.values()))  # the open ones

    busy = property(lambda self: self._model_lock.held)  # whether a turn holds the model now
    waiting = property(lambda self: self._model_lock.waiting)  # requests waiting for the model

    def _acquire(self, cancelled: Callable[[], bool]) -> bool:
        """Wait for the model in turn (first come, first served); False if ``cancelled()`` turns true first."""
        if self.max_waiting is not None and self.waiting >= self.max_waiting:
            raise Busy(f"{self.waiting} requests are already waiting for the model; try again shortly")
        return self._model_lock.acquire(cancelled)

    def _release(self) -> None:
        self._model_lock.release()

    def _forget(self, session: ChatSession) -> None:
        with self._sessions_lock:
            self._sessions.pop(session.id, None)
            for key in [k for k, v in self._keyed.items() if v is session]:
                del self._keyed[key]

    def expire(self, now: float | None = None) -> list[str]:
        """Close the sessions idle for longer than ``session_timeout`` (their files go too); their ids."""
        if self.session_timeout is None:
            return []
        now = time.monotonic() if now is None else now
        expired = [s for s in self.sessions if not s.running and now - s.last_used > self.session_timeout]
        for session in expired:
            session.close(expired=True)
        return [s.id for s in expired]

    def _expire_loop(self) -> None:
        assert self.session_timeout is not None
        while not self._closing.wait(min(max(self.session_timeout / 4, 0.05), 30.0)):
            self.expire()

    def close(self) -> None:
        self._closing.set()
        for session in self.sessions:
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
        self.expired = False  # closed for being idle longer than the host's session timeout
        self.running = False
        self.last_used = time.monotonic()
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

    def send(self, request: TurnRequest, ticket: int | None = None, cancelled: Callable[[], bool] | None = None,
             on_token: Callable[[int], None] | None = None) -> TurnResult:
        """Run one turn: check and tokenize the uploads, generate, decode, save the media and the transcript.

        ``cancelled()`` (a client that went away) stops the turn as `stop` does, at the next token; ``on_token``
        sees each generated id as it is sampled (streaming)."""
        ticket = self.ticket() if ticket is None else ticket
        with self._turn_lock:
            if self.closed:
                raise ServeError("this session was closed (expired, or the server stops); start a new one", status=410)
            self.running, self.last_used = True, time.monotonic()
            try:
                return self._send(request, ticket, cancelled or (lambda: False), on_token)
            finally:
                self.running, self.last_used = False, time.monotonic()

    def _send(self, request: TurnRequest, ticket: int, cancelled: Callable[[], bool],
              on_token: Callable[[int], None] | None) -> TurnResult:
        turn = self.turns + 1
        output = self._check_choices(request)
        settings = request.settings or self.host.defaults.settings
        task = self.host.task if request.task is None else request.task
        constrained = self.host.engine.constrained if request.constrained is None else bool(request.constrained)
        overrides = self._overrides(request)
        voice = self._check_voice(request.voice)
        parts, inputs = self._stage_inputs(request, turn)
        generator = torch.Generator(device=self.engine.device).manual_seed(int(request.seed))
        stopped = lambda: ticket < self._stop_below or cancelled()  # noqa: E731
        self.status = Status("waiting")
        try:
            if not self.host._acquire(stopped):
                raise TurnStopped("stopped before it started")
        except ServeError:  # turned away or stopped while waiting: the uploads go
            self.status = Status()
            self._unstage(inputs)
            raise
        try:
            self.engine.constrained = constrained  # this session's view of the engine
            reply = self.engine.chat(parts, output="text" if output == AUTO else output, settings=settings,
                                     generator=generator, voice=voice, task=task, progress=self._progress(stopped),
                                     on_token=on_token, **overrides)
        except (ValueError, FileNotFoundError) as err:
            self._unstage(inputs)
            raise ServeError(self._readable(str(err), inputs)) from err
        finally:
            self.host._release()
            self.status = Status()
        choices = [f"task prompt {task}", f"{settings} presets",
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
            self.host.interrupted += 1
            notes.append("stopped: the reply keeps what was generated until then")
        elif any(not seg.closed for seg in self.engine.vocab.segments(reply.ids)):
            notes.append("the reply reached its token budget (max new tokens) inside a media span, which was cut "
                         "there; ask for more tokens for a whole one (the conversation carries on)")
        return TurnResult(turn, reply.text, media, inputs, notes, reply.interrupted, reply)

    # -- checks --------------------------------------------------------------------------------------------------------
    def _check_choices(self, request: TurnRequest) -> str:
        if request.output not in self.host.outputs:
            raise ServeError(f"unknown output {request.output!r}; this model answers with {self.host.outputs}")
        if request.settings is not None and request.settings not in self.host.settings_choices:
            raise ServeError(f"unknown decoding preset {request.settings!r}; presets: {self.host.settings_choices}")
        if request.task is not None and request.task not in TASKS:
            raise ServeError(f"unknown task prompt {request.task!r}; choose one of {', '.join(TASKS)}")
        if not request.text.strip() and not request.files:
            raise ServeError("the message is empty: type something or attach a file")
        return request.output

    def _overrides(self, request: TurnRequest) -> dict:
        overrides: dict = self.host.defaults.generation_overrides()  # the server's; the request's knobs win
        if request.temperature is not None:  # 0: greedy decoding (OpenAI's convention)
            if not request.temperature >= 0:
                raise ServeError(f"temperature must be 0 (greedy) or above, got {request.temperature}")
            overrides.update({"do_sample": False} if request.temperature == 0 else {"temperature": request.temperature})
        if request.top_p is not None:
            if not 0 < request.top_p <= 1:
                raise ServeError(f"top-p must be in (0, 1], got {request.top_p}")
            overrides["top_p"] = float(request.top_p)
        context = self.host.context
        for key, words, low, high, named in [
                ("min_new_tokens", "min tokens", 0, context, context), ("num_beams", "num beams", 1, 16, 16),
                ("max_new_tokens", "max new tokens", 1, context, f"the model's context ({context})")]:
            value = getattr(request, key)
            if value is not None:
                if not low <= value <= high:
                    raise ServeError(f"{words} must be between {low} and {named}, got {value}")
                overrides[key] = int(value)
        return overrides

    def check_upload(self, upload: Upload) -> str:
        """The media kind of an upload, after checking its size and header against the limits."""
        return check_upload(upload, self.host.limits, self.host.upload_kinds, self.host.accepted())

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
            staged = self.folder / "inputs" / f"turn{turn:03d}-{i}-{safe_name(upload.display_name)}"
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

    def close(self, expired: bool = False) -> None:
        """Stop, and remove the session's files (the page closed, the session expired or the server stops)."""
        self.stop()
        with self._turn_lock:
            self.closed, self.expired = True, expired
            shutil.rmtree(self.folder, ignore_errors=True)
            shutil.rmtree(self.host.root / "downloads" / self.id, ignore_errors=True)
        self.host._forget(self)
