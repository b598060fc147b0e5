"""The tiny CLAP judge: a log-mel CNN audio encoder and a small word-level transformer text encoder, trained
contrastively on the demo corpus's music clips and captions.

`TinyClap` is the embedder the CLAP score takes (``embed_audio(wavs, sample_rate)`` and ``embed_text(texts)``, both
L2-normalised, plus ``sample_rate`` and ``window_seconds``); it resamples to its own 16 kHz internally, so callers may
pass 48 kHz audio as they would to laion_clap. Saved as ``config.json`` (architecture + vocabulary) and
``model.safetensors``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from benchmarks.judges.audio import LogMel, pad_batch, waveform_at
from benchmarks.judges.folder import JudgeFolder
from benchmarks.judges.training import JudgeTrainer, contrastive_loss, retrieval_at_1

SPECIALS = ("<pad>", "<unk>")
_WORD = re.compile(r"[a-z]+|[0-9]+")


def words(text: str) -> list[str]:
    """Lowercase words and numbers; punctuation dropped (captions are judged on content, not formatting)."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Sequence[str], min_count: int = 1) -> list[str]:
    counts = Counter(w for t in texts for w in words(t))
    return [*SPECIALS, *sorted(w for w, c in counts.items() if c >= min_count)]


class AudioEncoder(nn.Module):
    """Log-mel [B, n_mels, F] -> 4 conv blocks (3x3 conv, BN, ReLU, 2x2 max-pool) -> mean over frequency ->
    masked mean and max over time -> linear projection."""

    def __init__(self, n_mels: int, channels: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.convs = nn.Sequential(*blocks)
        self.stride = 2 ** len(channels)
        self.proj = nn.Sequential(nn.Linear(2 * c_in, c_in), nn.ReLU(), nn.Linear(c_in, embed_dim))

    def forward(self, mel: Tensor, frames: Tensor) -> Tensor:
        x = self.convs(mel.unsqueeze(1)).mean(2)  # [B, C, F']
        valid = (frames // self.stride).clamp(min=1)
        mask = torch.arange(x.shape[-1], device=x.device)[None] < valid[:, None]  # [B, F']
        mean = (x * mask[:, None]).sum(-1) / valid[:, None]
        peak = x.masked_fill(~mask[:, None], float("-inf")).amax(-1)
        return self.proj(torch.cat([mean, peak], -1))


class TextEncoder(nn.Module):
    """Word embeddings + learned positions -> pre-norm transformer encoder -> masked mean -> projection."""

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, max_words: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.pos = nn.Parameter(torch.randn(max_words, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)

    def forward(self, ids: Tensor) -> Tensor:
        pad = ids.eq(0)
        x = self.encoder(self.embed(ids) + self.pos[: ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.proj(self.norm((x * keep).sum(1) / keep.sum(1).clamp(min=1)))


class TinyClap(JudgeFolder, nn.Module):
    """The CLAP judge model + its embedder interface (for `benchmarks.metrics.CLAPScore`)."""

    kind = "tiny CLAP judge"

    def __init__(self, vocab: Sequence[str], sample_rate: int = 16000, n_mels: int = 64, hop_length: int = 320,
                 channels: Sequence[int] = (16, 32, 64, 128), text_width: int = 128, text_layers: int = 2,
                 text_heads: int = 4, max_words: int = 96, embed_dim: int = 128, window_seconds: float = 10.0) -> None:
        super().__init__()
        self.config = {"vocab": list(vocab), "sample_rate": sample_rate, "n_mels": n_mels, "hop_length": hop_length,
                       "channels": list(channels), "text_width": text_width, "text_layers": text_layers,
                       "text_heads": text_heads, "max_words": max_words, "embed_dim": embed_dim,
                       "window_seconds": window_seconds}
        self.sample_rate, self.window_seconds = sample_rate, window_seconds
        self.index = {w: i for i, w in enumerate(vocab)}
        self.features = LogMel(sample_rate, n_mels, hop_length, n_fft=4 * hop_length)
        self.audio = AudioEncoder(n_mels, channels, embed_dim)
        self.text = TextEncoder(len(vocab), text_width, text_layers, text_heads, max_words, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's init
        self.description = "tiny CLAP judge (log-mel CNN + word transformer) trained on the anygpt demo corpus"

    # -- training-side encoders (batched tensors) --
    def encode_audio(self, wav: Tensor, lengths: Tensor) -> Tensor:
        """[B, T] waveforms at ``self.sample_rate`` -> normalised [B, D]."""
        mel = self.features(wav)
        frames = lengths // self.config["hop_length"] + 1
        return F.normalize(self.audio(mel, frames), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        unk, cap = self.index["<unk>"], self.config["max_words"]
        rows = [[self.index.get(w, unk) for w in words(t)][:cap] or [unk] for t in texts]
        ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        return F.normalize(self.text(self.tokenize(texts).to(self.logit_scale.device)), dim=-1)

    # -- the embedder interface --
    @torch.inference_mode()
    def embed_audio(self, wavs: Sequence[Tensor] | Tensor, sample_rate: int, batch_size: int = 32) -> Tensor:
        """Clips (each [T] or [C, T], any rate) -> [B, embed_dim], L2-normalised; longer clips are judged whole."""
        if isinstance(wavs, Tensor) and wavs.dim() == 1:
            wavs = [wavs]
        clips = [waveform_at(w, sample_rate, self.sample_rate, f"clip {i}") for i, w in enumerate(wavs)]
        shortest = self.audio.stride * self.config["hop_length"]  # the CNN pools 2**blocks mel frames into one
        clips = [F.pad(c, (0, shortest - c.shape[-1])) if c.shape[-1] < shortest else c for c in clips]
        out = []
        for start in range(0, len(clips), batch_size):
            batch, lengths = pad_batch(clips[start : start + batch_size])
            out.append(self.encode_audio(batch.to(self.logit_scale.device), lengths.to(self.logit_scale.device)))
        return torch.cat(out).float().cpu()

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> Tensor:
        if isinstance(texts, str):
            texts = [texts]
        return self.encode_text(list(texts)).float().cpu()


class TinyClapTrainer(JudgeTrainer):
    """Contrastive training of `TinyClap` on (clip, caption) batches from `benchmarks.judges.data.AudioTextData`.

    The word vocabulary is built from the training captions when fit starts (it is part of the saved config).
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, hop_length: int = 320,
                 channels: Sequence[int] = (16, 32, 64, 128), text_width: int = 128, text_layers: int = 2,
                 embed_dim: int = 128, lr: float = 2e-3, weight_decay: float = 0.05, warmup_steps: int = 30,
                 export_dir: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model: TinyClap | None = None
        self._val: list[tuple[Tensor, Tensor]] = []

    def configure_model(self) -> None:
        if self.model is not None:
            return
        dm = self.trainer.datamodule
        if dm.train_set is None:
            dm.setup("fit")
        h = self.hparams
        vocab = build_vocab([t for texts in dm.train_set.texts for t in texts])
        self.model = TinyClap(vocab, h.sample_rate, h.n_mels, h.hop_length, h.channels, h.text_width, h.text_layers,
                              embed_dim=h.embed_dim)
        rank_zero_info(f"tiny CLAP: {len(vocab)} words in the vocabulary")

    def training_step(self, batch: tuple[Tensor, Tensor, list[str]], batch_idx: int) -> Tensor:
        wav, lengths, texts = batch
        audio = self.model.encode_audio(wav, lengths)
        loss = contrastive_loss(audio, self.model.encode_text(texts), self.model.logit_scale.exp().clamp(max=100))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch[-1]))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor, list[str]], batch_idx: int) -> None:
        wav, lengths, texts = batch
        self._val.append((self.model.encode_audio(wav, lengths), self.model.encode_text(texts)))

    def on_validation_epoch_end(self) -> None:
        audio, text = (torch.cat(x) for x in zip(*self._val, strict=True))
        self._val.clear()
        r1 = retrieval_at_1(audio, text)
        self.log("val/a2t_r1", r1, prog_bar=True)
        self.log("val/t2a_r1", retrieval_at_1(text, audio))
        if not self.trainer.sanity_checking:
            rank_zero_info(f"epoch {self.current_epoch}: val audio->text R@1 {r1:.3f} over {len(audio)} clips")

    def on_fit_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            self.model.save(self.hparams.export_dir, extra=self.record("demo corpus music train split (MusicCaps csv)"))
