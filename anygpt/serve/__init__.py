"""``anygpt serve``: a web page (and HTTP API) to talk to a model in every modality it has.

`anygpt.serve.session` holds what a turn does (no web framework); `anygpt.serve.app` is the Gradio page over it and
`anygpt.serve.api` the OpenAI-compatible routes under ``/v1`` on the same port.
"""

from __future__ import annotations

import signal

from anygpt.assets import TRAINED_DEMO, asset_path, default_checkpoint
from anygpt.generation.options import DecodingOptions, LoadingOptions, PromptOptions
from anygpt.hub import is_hub_id


def serve(ckpt: str | None = None, host: str = "127.0.0.1", port: int = 7860, device: str = "cpu",
          loading: LoadingOptions = LoadingOptions(), prompt: PromptOptions = PromptOptions(),
          decoding: DecodingOptions = DecodingOptions(), max_upload_mb: float = 20.0,
          max_image_megapixels: float = 40.0, max_audio_seconds: float = 120.0, max_files: int = 8,
          max_queue: int = 16, api_key: str | None = None, session_timeout: float | None = 3600.0) -> None:
    """Serve a chat page for a model: text, images, speech and music in and out, one request at a time.

    The loading, prompt and decoding options are `anygpt chat`'s groups; those a visitor may change per message
    (task prompt, constrained decoding, preset and its knobs, seed) start from the values given here.

    Args:
        ckpt: AnyGPT/HF folder, released AnyGPT folder, Lightning .ckpt or hub id (``fnlp/AnyGPT-chat``); default:
            ``runs/demo/export`` when the main command has run here, else the demo model shipped with anygpt.
        host: address to listen on; the default serves this machine only (0.0.0.0 opens it to the network).
        port: port to listen on.
        device: where the model runs (cpu, cuda, cuda:1).
        loading: how the checkpoint is opened (``--loading.tokenizers``, ``--loading.image_decoder``,
            ``--loading.compile``, ``--loading.adapter``, ``--loading.trust_code``).
        prompt: how prompts are written (``--prompt.template``, ``--prompt.task``, ``--prompt.system_prompt``,
            ``--prompt.constrained``, ...); the page can change the task prompt and constrained decoding per message.
        decoding: the preset family a request starts from and overrides of it (``--decoding.settings``,
            ``--decoding.max_new_tokens``, ``--decoding.overrides``); ``--decoding.seed`` is the page's first seed
            (an API request without ``seed`` draws one, as OpenAI's does).
        max_upload_mb: largest file a visitor may upload.
        max_image_megapixels: largest image (width x height) accepted, checked from its header.
        max_audio_seconds: longest audio file accepted.
        max_files: most files attached to one message.
        max_queue: most requests waiting for the model; later ones are turned away with a message.
        api_key: the Bearer token the ``/v1`` routes require (default: none; set one before opening the port to others).
        session_timeout: seconds a conversation may stay idle before it and its files are removed (page and API
            clients alike; a page that comes back starts a new conversation); ``null``: never.
    """
    ckpt = ckpt or default_checkpoint()
    if not asset_path(ckpt).exists() and not is_hub_id(ckpt):  # a hub id is fetched (or refused, named) by the loader
        how = (" The demo model is made by `anygpt fit --config experiments/demo/pretrain.yaml` (about 20 minutes on"
               " 2 CPU cores), which exports it there." if ckpt == TRAINED_DEMO else "")
        raise SystemExit(f"anygpt serve: error: no checkpoint at {ckpt}.{how} Or pass --ckpt with a model folder, a "
                         "released AnyGPT folder or a Lightning .ckpt.")
    from anygpt.generation.pipeline import AnyGPT
    from anygpt.prompts import TASKS
    from anygpt.serve.app import launch
    from anygpt.serve.session import MB, ModelHost, UploadLimits

    if prompt.task is not None and prompt.task not in TASKS:
        raise SystemExit(f"anygpt serve: error: unknown --prompt.task {prompt.task!r}; choose one of "
                         f"{', '.join(TASKS)}")
    engine = AnyGPT.load(ckpt, loading, prompt, device)
    limits = UploadLimits(max_bytes=int(max_upload_mb * MB), max_image_pixels=int(max_image_megapixels * 1e6),
                          max_audio_seconds=max_audio_seconds, max_files=max_files)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server as Ctrl-C does: files removed
    try:
        with ModelHost(engine, limits, name=ckpt, task=prompt.task, session_timeout=session_timeout,
                       max_waiting=max_queue, defaults=decoding) as model_host:
            kept = "until the server stops" if session_timeout is None else \
                f"until the server stops or the conversation is idle for {session_timeout:g} s"
            print(f"anygpt serve: uploads and replies are kept in {model_host.root} {kept}; OpenAI-compatible API at "
                  f"http://{host}:{port}/v1", flush=True)
            launch(model_host, host, port, max_queue=max_queue, block=True, api_key=api_key)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
