"""The speech codec: SpeechTokenizer level 1 as LLM tokens, SoundStorm + SpeechTokenizer decoding back to audio.

`SpeechTokenizerCodec` is the paper's 104M-parameter tokenizer at 50 Hz (weights from a local release folder);
`anygpt.modalities.speech.tiny.TinySpeechCodec` is the demo's ~1M-parameter configuration at 25 Hz. Training is
`anygpt.modalities.speech.training.SpeechTokenizerTrainer`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from anygpt.assets import asset_path, assets_dir
from anygpt.media import read_audio
from anygpt.modalities.codec import Codec
from anygpt.modalities.speech.soundstorm import SoundStorm
from anygpt.modalities.speech.tokenizer import SpeechTokenizerConfig, SpeechTokenizerModel


def soundstorm_path(value: str | Path) -> Path:
    """A SoundStorm checkpoint named in a codec's arguments: a path, ``anygpt-assets:tokenizers/soundstorm``, or (as
    folders saved before that scheme existed do) the bare name of a shipped tokenizer asset."""
    path = asset_path(value)
    shipped = assets_dir() / "tokenizers" / str(value)
    if not path.exists() and not path.is_absolute() and shipped.exists():
        return shipped
    return path


class SpeechTokenizerCodec(Codec):
    """SpeechTokenizer (paper configuration by default). Level-1 codes are the LLM tokens (1024 ids at 50 Hz).

    Args:
        config: `SpeechTokenizerConfig` fields (the release's ``config.json`` holds them).
        soundstorm: a SoundStorm checkpoint (`soundstorm_path`) that turns level-1 codes into all levels; without one
            only full codes decode.
        soundstorm_steps: MaskGIT iterations of level 2.
        prompt_seconds: how much of a voice prompt SoundStorm conditions on; None: the whole file, as the release.
        soundstorm_schedule: SoundStorm's decoding of level 2: "release" (AnyGPT's own MaskGIT schedule) or
            "annealed" (ours), see `SoundStorm.generate`.
    """

    modality = "speech"

    def __init__(self, config: dict[str, Any] | None = None, soundstorm: str | None = None, soundstorm_steps: int = 3,
                 prompt_seconds: float | None = None, soundstorm_schedule: str = "release") -> None:
        super().__init__()
        self.config = SpeechTokenizerConfig.from_dict(config or {})
        self.model = SpeechTokenizerModel(self.config)
        self.soundstorm_steps, self.prompt_seconds = soundstorm_steps, prompt_seconds
        self.soundstorm_schedule = soundstorm_schedule
        self._soundstorm: list[SoundStorm] = []  # kept out of the state dict: a separate checkpoint
        if soundstorm:
            self.attach_soundstorm(SoundStorm.from_pretrained(soundstorm_path(soundstorm)))

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    # -- tokens --------------------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_all_levels(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """All RVQ levels per item, ``[n_q, frames]``. Items of equal length are batched together; others run alone
        (zero padding would change what the bidirectional LSTM sees, so codes would depend on the batch)."""
        out: list[torch.Tensor | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, wav in enumerate(items):
            wav = wav.reshape(1, -1) if wav.dim() == 1 else wav
            if wav.shape[0] != 1:
                raise ValueError(f"speech item {i} has shape {tuple(wav.shape)}: expected mono [1, T] "
                                 "(Modality.read mixes files to mono)")
            if wav.shape[-1] < self.config.hop_length:
                raise ValueError(f"speech item {i} has {wav.shape[-1]} samples, fewer than one frame "
                                 f"({self.config.hop_length}); nothing to encode.")
            groups.setdefault(wav.shape[-1], []).append(i)
        for indices in groups.values():
            batch = torch.stack([items[i].reshape(1, -1) for i in indices]).to(self.device, torch.float32)
            codes = self.model.encode(batch)  # [n_q, B, F]
            for j, i in enumerate(indices):
                out[i] = codes[:, j].cpu()
        return out  # type: ignore[return-value]

    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Mono waveforms ``[1, T]`` at `sample_rate` -> level-1 (semantic) codes per item, ``[frames]``."""
        return [codes[0] for codes in self.encode_all_levels(items)]

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], voice: torch.Tensor | str | Path | None = None,
               steps: int | None = None, generator: torch.Generator | None = None, **context: Any
               ) -> list[torch.Tensor]:
        """Codes -> waveforms ``[1, T]``. Full codes (``[n_q, F]``) decode directly; level-1 codes (``[F]``) first get
        levels 2..n_q from SoundStorm, in the voice of ``voice`` (a waveform at `sample_rate` or an audio file), or a
        random voice without one. ``steps`` overrides ``soundstorm_steps``; other context keys are ignored."""
        waves = []
        for c in codes:
            full = c if c.dim() == 2 else self.acoustic_codes(c, voice=voice, steps=steps, generator=generator)
            waves.append(self.model.decode(full[:, None].to(self.device).long())[0].float().cpu() if full.shape[-1]
                         else torch.zeros(1, 0))
        return waves

    # -- SoundStorm ----------------------------------------------------------------------------------------------------
    def attach_soundstorm(self, soundstorm: SoundStorm) -> None:
        levels = soundstorm.num_quantizers + 1
        if levels != self.config.n_q or soundstorm.net.codebook_size != self.codebook_size:
            raise ValueError(f"SoundStorm predicts {levels} levels of {soundstorm.net.codebook_size} codes; this "
                             f"tokenizer has {self.config.n_q} of {self.codebook_size}.")
        self._soundstorm[:] = [soundstorm.to(self.device).eval()]

    @property
    def soundstorm(self) -> SoundStorm:
        if not self._soundstorm:
            raise RuntimeError("decoding level-1 speech tokens needs SoundStorm: construct the codec with "
                               "soundstorm=PATH (a SoundStorm.save_pretrained folder or the release .pt).")
        return self._soundstorm[0]

    def prompt_codes(self, voice: torch.Tensor | str | Path) -> torch.Tensor:
        """All levels of a voice prompt, ``[frames, n_q]`` (the voice to clone): the whole file, as the release
        encodes it, or its first ``prompt_seconds`` when that is set."""
        wav = voice if isinstance(voice, torch.Tensor) else \
            read_audio(voice, self.sample_rate, min_samples=self.config.hop_length)
        wav = wav.reshape(1, -1)
        if self.prompt_seconds is not None:
            wav = wav[:, : int(self.prompt_seconds * self.sample_rate)]
        return self.encode_all_levels([wav])[0].T

    def acoustic_codes(self, semantic: torch.Tensor, voice: torch.Tensor | str | Path | None = None,
                       steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Level-1 codes ``[F]`` -> all levels ``[n_q, F]`` through SoundStorm."""
        if semantic.numel() == 0:
            return torch.zeros(self.config.n_q, 0, dtype=torch.long)
        if semantic.min() < 0 or semantic.max() >= self.codebook_size:
            raise ValueError(f"speech codes must lie in [0, {self.codebook_size}), got [{int(semantic.min())}, "
                             f"{int(semantic.max())}]")
        storm = self.soundstorm
        device = next(storm.parameters()).device
        prompt_codes = None if voice is None else self.prompt_codes(voice)[None].to(device)
        full = storm.generate(semantic.reshape(1, -1).to(device), prompt_codes,
                              steps=self.soundstorm_steps if steps is None else steps,
                              schedule=self.soundstorm_schedule, generator=generator)
        return full[0].T.cpu()

    # -- checkpoints ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, trust_code: bool = False,
                        **overrides: Any) -> SpeechTokenizerCodec:
        """A `save_pretrained` folder, or the release layout: a folder with SpeechTokenizer's ``config.json`` and
        checkpoint (``ckpt.dev`` / ``SpeechTokenizer.pt``), or AnyGPT's ``AnyGPT-speech-modules`` folder holding
        ``speechtokenizer/`` and ``soundstorm/speechtokenizer_soundstorm_mls.pt``."""
        if path is None or (asset_path(path) / "model.safetensors").exists():  # saved by the paper or tiny codec
            return super().from_pretrained(path, trust_code=trust_code, **overrides)
        root = path = asset_path(path)
        if (path / "speechtokenizer").is_dir():
            path = path / "speechtokenizer"
            storm = sorted((root / "soundstorm").glob("*.pt")) if (root / "soundstorm").is_dir() else []
            if storm and "soundstorm" not in overrides:
                overrides["soundstorm"] = str(storm[0])
        config_file = path / "config.json"
        checkpoints = [p for name in ("ckpt.dev", "SpeechTokenizer.pt") if (p := path / name).exists()]
        checkpoints += sorted(p for p in path.glob("*.pt") if p not in checkpoints)
        if not config_file.exists() or not checkpoints:
            raise FileNotFoundError(f"{path} is neither a save_pretrained folder (config.json + model.safetensors) "
                                    "nor a SpeechTokenizer release folder (config.json + ckpt.dev/*.pt).")
        config = json.loads(config_file.read_text())
        codec = cls(config=config, **overrides)
        codec.model = SpeechTokenizerModel.from_release(config_file, checkpoints[0])
        return codec.eval()
