"""Audio replies (speech, music) decoded while they are generated, in pieces a client can play at once.

What the decoder allows: the speech decoder is not causal. SoundStorm fills a span's acoustic levels with bidirectional
attention and a MaskGIT schedule over the span's whole length, and the codec's SEANet decoder looks ahead through its
convolutions; so no piece can be decoded once and kept as the whole span would decode it. `AudioStreamer` therefore
decodes the growing prefix of the span every ``every`` codes (with a fixed seed), and emits the samples past what it
already sent, holding back the last ``holdback`` codes' samples (decoded without their right context). When the span
ends, the rest comes from the reply's own decode of the whole span (`AnyGPT.reply`, unchanged), so the streamed audio
has the non-streamed reply's length and, from the last piece on, its very samples; the earlier pieces come from
prefix decodes and differ from it (measured in docs/performance.md, "Streaming speech").

Cost: the prefixes decoded add up to about n^2 / (2 * every) codes for a span of n, against n without streaming; they
are decoded between two tokens, so generation waits while a piece is decoded (the model and the decoder share a
device and a lock). With ``window`` W, a piece decodes only the codes from W before the first unsent one (a left
context), so each piece costs about W + every codes and the whole stream n * (W + every) / every: linear in n, with
pieces that differ more from the whole span's decode (figures for both in docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from anygpt.generation.pipeline import AnyGPT, Reply
from anygpt.vocab import Segment


class AudioStreamer:
    """Follows generated ids (`feed`, one id at a time) and hands each new piece of the first ``modality`` span's
    waveform (``[1, T]`` float at the codec's rate) to ``emit``; `finish` emits the rest from the reply's own decode.

    Args:
        engine: the model whose vocabulary and tokenizers decode the span.
        modality: an audio modality of the engine (speech, music).
        emit: called with each new piece, in order (in the generating thread).
        every: decode the growing prefix every this many new codes (speech: one code per frame, 50 frames a second
            in the release codec).
        holdback: the last this many codes' samples of a prefix are not sent (their right context is missing).
        voice, steps, seed: the decoder's context, as `AnyGPT.decode` takes it (a voice to clone, SoundStorm's
            iterations, the seed of its random draws).
        forced: the span is already open when generation starts (the prompt ends with its start marker).
        window: decode only this many codes of left context before the first unsent code (None: the whole prefix).
    """

    def __init__(self, engine: AnyGPT, modality: str, emit: Callable[[torch.Tensor], None], every: int = 25,
                 holdback: int = 2, voice: Any = None, steps: int | None = None, seed: int = 0,
                 forced: bool = False, window: int | None = None) -> None:
        if modality not in engine.tokenizers or engine.tokenizers[modality].media.name != "audio":
            raise ValueError(f"{modality!r} is not an audio modality of this model; audio streams only for "
                             f"{[n for n, t in engine.tokenizers.items() if t.media.name == 'audio']}")
        if every < 1 or holdback < 0 or (window is not None and window < 0):
            raise ValueError(f"every must be >= 1, holdback and window >= 0, got every={every}, holdback={holdback}, "
                             f"window={window}")
        self.engine, self.modality, self.emit = engine, modality, emit
        self.every, self.holdback, self.window = every, holdback, window
        cycle = engine.tokenizers[modality].structure.cycle
        self._step = len(cycle) if cycle else 1  # a window starts on a frame (music: 4 codes)
        self.voice, self.steps, self.seed = voice, steps, seed
        self.range = engine.vocab.modalities[modality]
        self.codes: list[int] = []
        self.state = "open" if forced else "before"  # before the span, inside it ("open"), or past it ("done")
        self.sent = 0  # samples emitted so far
        self.decodes = 0  # prefix decodes run (the cost)
        self._decoded_at = 0
        self._per_code: float | None = None  # samples per code, from the first decode (of the whole prefix)

    @property
    def started(self) -> bool:
        return self.sent > 0

    def feed(self, token: int) -> None:
        """One generated id; every ``every`` new codes of the span, a prefix decode and a new piece."""
        if self.state == "before":
            self.state = "open" if token == self.range.start_id else "before"
            return
        if self.state != "open":
            return
        if token in self.range.codes:
            self.codes.append(token - self.range.first_id)
            if len(self.codes) - self._decoded_at >= self.every:
                self._piece()
        else:  # the end marker, or anything else, ends the span; the rest comes from the whole span's decode
            self.state = "done"

    def _piece(self) -> None:
        self._decoded_at = len(self.codes)
        start = 0
        if self.window is not None and self._per_code is not None:
            start = max(0, int(self.sent / self._per_code) - self.window)
            start -= start % self._step
        codes = torch.tensor(self.codes[start:], dtype=torch.long)
        decoded = self.engine.decode_span(Segment(self.modality, codes=codes, closed=False), self.voice, self.steps,
                                          self.seed)
        self.decodes += 1
        if decoded.data is None or decoded.codes is None or decoded.codes.numel() == 0:
            return
        wave = decoded.data.reshape(1, -1)
        self._per_code = per_code = self._per_code or wave.shape[-1] / decoded.codes.numel()
        offset = int(round(start * per_code))  # the window's first sample in the whole span
        upto = offset + wave.shape[-1] - int(round(self.holdback * per_code))
        if upto > self.sent:
            self.emit(wave[:, self.sent - offset:upto - offset])
            self.sent = upto

    def finish(self, reply: Reply | None) -> torch.Tensor | None:
        """Emit the samples not yet sent, from the reply's own decode of the span; returns that whole waveform (None
        if the reply has no decoded span of the modality)."""
        spans = [] if reply is None else [s for s in reply.media(self.modality) if s.data is not None]
        if not spans:
            return None
        wave = spans[0].data.reshape(1, -1)
        if wave.shape[-1] > self.sent:
            self.emit(wave[:, self.sent:])
            self.sent = wave.shape[-1]
        return wave


def pcm16(wave: torch.Tensor) -> bytes:
    """A float waveform as 16-bit little-endian PCM, quantized as libsndfile quantizes the WAV files
    `anygpt.media.write_audio` writes (floor of x * 2^15, clipped), so pieces and files hold the same samples."""
    data = wave.detach().double().reshape(-1).clamp(-1, 1).cpu().numpy()
    return np.clip(np.floor(data * 32768), -32768, 32767).astype("<i2").tobytes()
