"""The speech modality: SpeechTokenizer level 1 as LLM tokens, SoundStorm + SpeechTokenizer decoding back to audio.

Two registered configurations share this code: `SpeechTokenizerModality` (the paper's 104M-parameter tokenizer at
50 Hz, weights from a local release directory) and `TinySpeechModality` (a ~1M-parameter tokenizer at 25 Hz that trains
on the CPU in minutes on the demo corpus, shipped under ``anygpt/assets/tokenizers/speech``).

Training (``anygpt fit``) follows SpeechTokenizer minus the adversarial part: waveform L1 + multi-scale log-mel L1 +
RVQ commitment + semantic distillation of RVQ level 1 through ``transform``. The teacher is either HuBERT features
(``semantic_teacher="hubert"``, a local HuBERT checkpoint, the paper's recipe) or frame-level phone identities from the
corpus' alignments (``"phones"``: ``transform`` then outputs phone logits and the loss is cross-entropy). The phone
teacher is what the demo uses: with no HuBERT weights available offline, the synthesizer's own phoneme timing is the
most direct content signal, and it pushes level 1 to encode *what* is said while levels 2-8 keep *how* it sounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from anygpt.modalities.base import (
    Modality,
    SpanStructure,
    read_pretrained_config,
    register_modality,
    trusted_modality_class,
)
from anygpt.modalities.speech.audio import AudioFileError, read_audio, write_audio
from anygpt.modalities.speech.data import IGNORE_INDEX
from anygpt.modalities.speech.soundstorm import SoundStormModule
from anygpt.modalities.speech.tokenizer import SpeechTokenizerConfig, SpeechTokenizerModel

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "tokenizers"


def resolve_asset(path: str | Path) -> Path:
    """A path as given if it exists, else relative to ``anygpt/assets/tokenizers`` (the shipped checkpoints)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    return ASSETS / path


class SpeechTokenizerModality(Modality):
    """SpeechTokenizer (paper configuration by default). Level-1 codes are the LLM tokens (1024 ids at 50 Hz).

    Voice cloning (decoding level-1 codes with a ``prompt``) runs SoundStorm with ``soundstorm_schedule`` ("release":
    AnyGPT's own MaskGIT schedule; "annealed": ours, see `SoundStorm.generate`) for ``soundstorm_steps`` steps, on
    the whole prompt (as the release) unless ``prompt_seconds`` cuts it.
    """

    name = "speech"
    markers = ("<sosp>", "<eosp>")
    token_format = "<🗣️{}>"

    def __init__(self, config: dict[str, Any] | None = None, soundstorm: str | None = None, soundstorm_steps: int = 3,
                 prompt_seconds: float | None = None, semantic_teacher: str = "hubert", phones: Sequence[str] = (),
                 hubert_path: str | None = None, lr: float = 1e-4, loss_weights: dict[str, float] | None = None,
                 mel_scales: Sequence[int] = (256, 512, 1024, 2048), soundstorm_schedule: str = "release") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = SpeechTokenizerConfig.from_dict(config or {})
        if semantic_teacher == "phones" and len(phones) != self.config.semantic_dimension:
            raise ValueError(f"semantic_teacher='phones' needs semantic_dimension == len(phones) "
                             f"({self.config.semantic_dimension} != {len(phones)}): transform outputs phone logits.")
        if semantic_teacher not in ("phones", "hubert"):
            raise ValueError(f"semantic_teacher must be 'phones' or 'hubert', got {semantic_teacher!r}")
        self.model = SpeechTokenizerModel(self.config)
        self.weights = {"wave": 1.0, "mel": 1.0, "commit": 1.0, "semantic": 1.0, **(loss_weights or {})}
        self._soundstorm: list[SoundStormModule] = []  # kept out of the state dict: a separate checkpoint
        self._hubert: list[torch.nn.Module] = []
        if soundstorm:
            self.attach_soundstorm(SoundStormModule.from_pretrained(resolve_asset(soundstorm)))

    # -- identity -----------------------------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def structure(self) -> SpanStructure:
        return SpanStructure()

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    # -- raw I/O -------------------------------------------------------------------------------------------------------
    def load(self, source: str | Path | bytes) -> torch.Tensor:
        """Mono ``[1, T]`` at the tokenizer's rate; raises `AudioFileError` naming the file when unusable."""
        return read_audio(source, self.sample_rate, min_samples=self.config.hop_length)

    def save(self, data: torch.Tensor, path: str | Path) -> None:
        write_audio(data, path, self.sample_rate)

    # -- tokens --------------------------------------------------------------------------------------------------------
    def _frames(self, samples: int) -> int:
        return -(-samples // self.config.hop_length)

    @torch.inference_mode()
    def encode_all_levels(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """All RVQ levels per item, ``[n_q, frames]``. Items of equal length are batched together; others run alone
        (zero padding would change what the bidirectional LSTM sees, so codes would depend on the batch)."""
        out: list[torch.Tensor | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, wav in enumerate(items):
            wav = wav.reshape(1, -1) if wav.dim() == 1 else wav
            if wav.shape[0] != 1:
                raise ValueError(f"speech item {i} has shape {tuple(wav.shape)}: expected mono [1, T] (use .load)")
            if wav.shape[-1] < self.config.hop_length:
                raise AudioFileError(f"speech item {i} has {wav.shape[-1]} samples, fewer than one frame "
                                     f"({self.config.hop_length}); nothing to encode.")
            groups.setdefault(wav.shape[-1], []).append(i)
        for indices in groups.values():
            batch = torch.stack([items[i].reshape(1, -1) for i in indices]).to(self.device, torch.float32)
            codes = self.model.encode(batch)  # [n_q, B, F]
            for j, i in enumerate(indices):
                out[i] = codes[:, j].cpu()
        return out  # type: ignore[return-value]

    def encode(self, items: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Level-1 (semantic) codes per item, ``[frames]``: the LLM tokens."""
        return [codes[0] for codes in self.encode_all_levels(items)]

    @torch.inference_mode()
    def decode(self, codes: Sequence[torch.Tensor], prompt: torch.Tensor | str | Path | None = None,
               steps: int | None = None) -> list[torch.Tensor]:
        """Codes -> waveforms ``[1, T]``. Full codes (``[n_q, F]``) decode directly; level-1 codes (``[F]``) first get
        levels 2..n_q from SoundStorm, in the voice of ``prompt`` (a waveform or audio file) or a random voice."""
        waves = []
        for c in codes:
            full = c if c.dim() == 2 else self.acoustic_codes(c, prompt=prompt, steps=steps)
            if full.shape[-1] == 0:
                waves.append(torch.zeros(1, 0))
                continue
            waves.append(self.model.decode(full[:, None].to(self.device).long())[0].float().cpu())
        return waves

    def enhance(self, decoded: torch.Tensor, **context: Any) -> torch.Tensor:
        """Voice cloning: re-synthesize ``context["codes"]`` (level 1) in the voice of ``context["prompt"]``."""
        if "codes" not in context:
            return decoded
        return self.decode([context["codes"]], prompt=context.get("prompt"), steps=context.get("steps"))[0]

    # -- SoundStorm ----------------------------------------------------------------------------------------------------
    def attach_soundstorm(self, soundstorm: SoundStormModule) -> None:
        levels = soundstorm.model.num_quantizers + 1
        if levels != self.config.n_q or soundstorm.hparams.codebook_size != self.codebook_size:
            raise ValueError(f"SoundStorm predicts {levels} levels of {soundstorm.hparams.codebook_size} codes; this "
                             f"tokenizer has {self.config.n_q} of {self.codebook_size}.")
        self._soundstorm[:] = [soundstorm.to(self.device).eval()]

    @property
    def soundstorm(self) -> SoundStormModule:
        if not self._soundstorm:
            raise RuntimeError("decoding level-1 speech tokens needs SoundStorm: construct the modality with "
                               "soundstorm=PATH (a SoundStormModule.save_pretrained directory or the release .pt).")
        return self._soundstorm[0]

    def prompt_codes(self, prompt: torch.Tensor | str | Path) -> torch.Tensor:
        """All levels of a voice prompt, ``[frames, n_q]`` (the voice to clone): the whole file, as the release
        encodes it, or its first ``prompt_seconds`` when that is set."""
        wav = prompt if isinstance(prompt, torch.Tensor) else self.load(prompt)
        wav = wav.reshape(1, -1)
        if self.hparams.prompt_seconds is not None:
            wav = wav[:, : int(self.hparams.prompt_seconds * self.sample_rate)]
        return self.encode_all_levels([wav])[0].T

    def acoustic_codes(self, semantic: torch.Tensor, prompt: torch.Tensor | str | Path | None = None,
                       steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Level-1 codes ``[F]`` -> all levels ``[n_q, F]`` through SoundStorm."""
        if semantic.numel() == 0:
            return torch.zeros(self.config.n_q, 0, dtype=torch.long)
        if semantic.min() < 0 or semantic.max() >= self.codebook_size:
            raise ValueError(f"speech codes must lie in [0, {self.codebook_size}), got [{int(semantic.min())}, "
                             f"{int(semantic.max())}]")
        storm = self.soundstorm
        device = next(storm.parameters()).device
        prompt_codes = None if prompt is None else self.prompt_codes(prompt)[None].to(device)
        full = storm.model.generate(semantic.reshape(1, -1).to(device), prompt_codes,
                                    steps=self.hparams.soundstorm_steps if steps is None else steps,
                                    schedule=self.hparams.get("soundstorm_schedule", "release"), generator=generator)
        return full[0].T.cpu()

    # -- training ------------------------------------------------------------------------------------------------------
    def _mel_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as AF

        total = x.new_zeros(())
        for n_fft in self.hparams.mel_scales:
            window = torch.hann_window(n_fft, device=x.device)
            n_mels = min(80, n_fft // 8)
            fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, self.sample_rate / 2, n_mels, self.sample_rate).to(x.device)

            def logmel(w: torch.Tensor, n_fft: int = n_fft, window: torch.Tensor = window,
                       fb: torch.Tensor = fb) -> torch.Tensor:
                spec = torch.stft(w.reshape(-1, w.shape[-1]), n_fft, n_fft // 4, window=window, return_complex=True)
                return (spec.abs().pow(2).transpose(1, 2) @ fb).clamp(min=1e-5).log()

            total = total + F.l1_loss(logmel(x), logmel(y))
        return total / len(self.hparams.mel_scales)

    def _semantic_loss(self, semantic: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        if self.hparams.semantic_teacher == "phones":
            labels = batch["phones"][:, : semantic.shape[1]]
            logits = semantic[:, : labels.shape[1]]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
            valid = labels != IGNORE_INDEX
            accuracy = (logits.argmax(-1)[valid] == labels[valid]).float().mean() if valid.any() else None
            return loss, accuracy
        teacher = self._teacher_features(batch["audio"], semantic.shape[1])
        # SpeechTokenizer's "D-axis" distillation: -log sigmoid(cosine) per frame
        return -F.logsigmoid(F.cosine_similarity(semantic, teacher, dim=-1)).mean(), None

    @torch.no_grad()
    def _teacher_features(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
        """The average of all HuBERT layers' outputs (SpeechTokenizer's ``hubert_avg`` teacher), ``[B, frames, D]``."""
        if not self._hubert:
            if not self.hparams.hubert_path:
                raise ValueError("semantic_teacher='hubert' needs hubert_path: a local HuBERT checkpoint directory "
                                 "(transformers HubertModel, e.g. facebook/hubert-base-ls960) -- or use 'phones'.")
            from transformers import HubertModel

            self._hubert.append(HubertModel.from_pretrained(self.hparams.hubert_path).eval().to(self.device))
        out = self._hubert[0](audio[:, 0], output_hidden_states=True)
        feats = torch.stack(out.hidden_states[1:]).mean(0)
        if feats.shape[1] < frames:
            feats = F.pad(feats, (0, 0, 0, frames - feats.shape[1]), mode="replicate")
        return feats[:, :frames]

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        audio = batch["audio"]
        out = self.model(audio)
        recon = out["audio"][..., : audio.shape[-1]]
        losses = {"wave": F.l1_loss(recon, audio), "mel": self._mel_loss(recon, audio),
                  "commit": out["commit_loss"]}
        losses["semantic"], accuracy = self._semantic_loss(out["semantic"], batch)
        loss = sum(self.weights[k] * v for k, v in losses.items())
        bs = audio.shape[0]
        for k, v in losses.items():
            self.log(f"{stage}/{k}", v, batch_size=bs)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs)
        if accuracy is not None:
            self.log(f"{stage}/phone_accuracy", accuracy, prog_bar=True, batch_size=bs)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr, betas=(0.5, 0.9))

    def on_train_end(self) -> None:
        export = getattr(self.trainer, "default_root_dir", None)
        if export and self.trainer.is_global_zero:
            self.save_pretrained(Path(export) / "pretrained")

    # -- checkpoints ---------------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        for key in [k for k in self.hparams if k.startswith("_")]:  # LightningCLI's "_class_path" bookkeeping
            self.hparams.pop(key)
        super().save_pretrained(directory)

    @classmethod
    def from_pretrained(cls, path: str | Path, trust_code: bool = False, **overrides: Any) -> Modality:
        """A `save_pretrained` directory, or the release layout: a directory with SpeechTokenizer's ``config.json`` and
        checkpoint (``ckpt.dev`` / ``SpeechTokenizer.pt``), or AnyGPT's ``AnyGPT-speech-modules`` folder holding
        ``speechtokenizer/`` and ``soundstorm/speechtokenizer_soundstorm_mls.pt``."""
        path = resolve_asset(path)
        if (path / "model.safetensors").exists():  # build the class that saved it (paper or tiny configuration)
            from safetensors.torch import load_file

            config = read_pretrained_config(path / "config.json")
            target = trusted_modality_class(config["class_path"], str(path / "config.json"), trust_code)
            modality = target(**{**config["init_args"], **overrides})
            modality.load_state_dict(load_file(str(path / "model.safetensors")))
            return modality.eval()
        root = path
        if (path / "speechtokenizer").is_dir():
            path = path / "speechtokenizer"
            storm = sorted((root / "soundstorm").glob("*.pt")) if (root / "soundstorm").is_dir() else []
            if storm and "soundstorm" not in overrides:
                overrides["soundstorm"] = str(storm[0])
        config_file = path / "config.json"
        checkpoints = [p for name in ("ckpt.dev", "SpeechTokenizer.pt") if (p := path / name).exists()]
        checkpoints += sorted(p for p in path.glob("*.pt") if p not in checkpoints)
        if not config_file.exists() or not checkpoints:
            raise FileNotFoundError(f"{path} is neither a save_pretrained directory (config.json + model.safetensors) "
                                    "nor a SpeechTokenizer release directory (config.json + ckpt.dev/*.pt).")
        config = json.loads(config_file.read_text())
        modality = cls(config=config, **overrides)
        modality.model = SpeechTokenizerModel.from_release(config_file, checkpoints[0])
        return modality.eval()


# espeak-ng English phoneme mnemonics seen at least 8 times in the demo corpus (stress marks stripped). Class 0 ("_")
# also takes frames before the first phoneme and every rarer phone.
TINY_PHONES = ("_", "n", "t", "d", "I", "s", "r", "k", "_:", "@", "D", "l", "b", "a", "z", "aI", "E", "0", "v", "@2",
               "p", "m", "eI", "i:", "w", "f", "3", "a#", "V", "g", "u:", "i", "I2", "A@", "oU", "h", "@L", "e@",
               "T", ";", "aU", "3:", "N", "j", "dZ", "O2", "O:", "tS", "r-", "o@", "O@", "U", "t#", "aa", "I#",
               "i@3", "S", "aI@", "i@", "aI2", "t[", "t2", "@-", "IR", "@5", "Z", "A:", "w#", "VR")

TINY_CONFIG: dict[str, Any] = {"n_filters": 8, "strides": [8, 5, 4, 4], "dimension": 64,
                               "semantic_dimension": len(TINY_PHONES), "bidirectional": True, "lstm_layers": 1,
                               "codebook_size": 256, "n_q": 8, "sample_rate": 16000,
                               "dead_code_threshold": 0.05}


class TinySpeechModality(SpeechTokenizerModality):
    """The demo's speech tokenizer: 25 Hz (hop 640), 8 levels x 256 codes, level 1 distilled to espeak phones.

    25 Hz halves the LLM sequence length of the paper's 50 Hz; espeak speaks ~12 phones/s, so each phone still spans two
    or more frames. 256 codes are plenty for ~60 phone classes and keep the demo vocabulary small.
    """

    def __init__(self, config: dict[str, Any] | None = None, soundstorm: str | None = None, soundstorm_steps: int = 3,
                 prompt_seconds: float = 1.5, semantic_teacher: str = "phones", phones: Sequence[str] = TINY_PHONES,
                 hubert_path: str | None = None, lr: float = 1e-3, loss_weights: dict[str, float] | None = None,
                 mel_scales: Sequence[int] = (256, 1024), soundstorm_schedule: str = "release") -> None:
        super().__init__(config={**TINY_CONFIG, **(config or {})}, soundstorm=soundstorm,
                         soundstorm_steps=soundstorm_steps, prompt_seconds=prompt_seconds,
                         semantic_teacher=semantic_teacher, phones=list(phones), hubert_path=hubert_path, lr=lr,
                         loss_weights=loss_weights, mel_scales=mel_scales, soundstorm_schedule=soundstorm_schedule)


register_modality(SpeechTokenizerModality)
