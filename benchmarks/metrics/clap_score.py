"""CLAP score (music/audio <-> caption): mean cosine of CLAP audio and text embeddings.

The embedder is pluggable (`AudioTextEmbedder`: `embed_audio(wavs, sample_rate)` and `embed_text(texts)`, both
L2-normalized). `LaionClapEmbedder` is the paper's judge: laion_clap from a local checkpoint plus local RoBERTa files,
constructed fully offline. The metric makes audio mono, resamples it to the embedder's rate (48 kHz for laion_clap) and
crops it deterministically to the embedder's window (10 s): `crop="start"` keeps the first 10 s, `crop="center"` the
middle 10 s. Clips shorter than the window are passed as they are (laion_clap repeat-pads them). The metric keeps only
the embeddings of the pairs it has seen, never audio, so memory stays bounded when clips are fed batch by batch.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from anygpt.media import resample, to_mono
from benchmarks.metrics.base import ObjectStateMetric


@runtime_checkable
class AudioTextEmbedder(Protocol):
    """Joint audio-text embedding model: embeddings of both sides live in one space and are L2-normalized."""

    sample_rate: int
    window_seconds: float

    def embed_audio(self, wavs: Sequence[Tensor], sample_rate: int) -> Tensor: ...

    def embed_text(self, texts: Sequence[str]) -> Tensor: ...


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 while laion_clap imports/constructs: it calls from_pretrained('roberta-base', ...) itself."""
    import huggingface_hub.constants as hub

    old_env, old_flag = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hub.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


class LaionClapEmbedder:
    """laion_clap `CLAP_Module` built offline: text branch from local RoBERTa files, weights from a local checkpoint.

    checkpoint: a laion_clap checkpoint (e.g. 630k-audioset-best.pt; music checkpoints need amodel="HTSAT-base"),
    a dict with "state_dict" or a bare state dict; None keeps random weights (tests).
    roberta: a local directory holding roberta-base's config.json and tokenizer files (vocab.json, merges.txt).
    Audio goes through laion_clap's own `get_audio_embedding_from_data` (int16 quantization, repeat-padding).
    """

    sample_rate = 48000
    window_seconds = 10.0

    def __init__(self, checkpoint: str | os.PathLike | None, roberta: str | os.PathLike, amodel: str = "HTSAT-tiny",
                 enable_fusion: bool = False, device: str | torch.device = "cpu", weights_only: bool = True) -> None:
        from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

        roberta = str(roberta)
        if not os.path.isfile(os.path.join(roberta, "config.json")):
            raise FileNotFoundError(f"{roberta}/config.json not found: pass a local copy of roberta-base")
        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"CLAP checkpoint not found: {checkpoint}")
        self.tokenizer = RobertaTokenizer.from_pretrained(roberta, local_files_only=True)
        if len(self.tokenizer) < 100:  # transformers builds an empty tokenizer instead of failing on missing files
            raise FileNotFoundError(f"{roberta} holds no RoBERTa tokenizer files (vocab.json, merges.txt)")

        tokenizer = self.tokenizer

        class LocalRoberta:  # stands in for RobertaModel in laion_clap; the checkpoint sets the weights
            @staticmethod
            def from_pretrained(*_: Any, **__: Any) -> RobertaModel:
                config = RobertaConfig.from_pretrained(roberta, local_files_only=True)
                return RobertaModel(config, add_pooling_layer=True)

        class LocalTokenizer:  # stands in for RobertaTokenizer in laion_clap.hook
            @staticmethod
            def from_pretrained(*_: Any, **__: Any) -> RobertaTokenizer:
                return tokenizer

        with _hub_offline():
            import laion_clap.hook  # puts laion_clap's top-level `clap_module` package on sys.path

            clap_model = importlib.import_module("clap_module.model")
            saved = clap_model.RobertaModel, laion_clap.hook.RobertaTokenizer
            clap_model.RobertaModel, laion_clap.hook.RobertaTokenizer = LocalRoberta, LocalTokenizer
            try:
                self.clap = laion_clap.hook.CLAP_Module(enable_fusion=enable_fusion, device=str(device), amodel=amodel)
            finally:
                clap_model.RobertaModel, laion_clap.hook.RobertaTokenizer = saved
        if checkpoint is not None:
            self.load_checkpoint(checkpoint, weights_only=weights_only)
        self.clap.eval()

    def load_checkpoint(self, path: str | os.PathLike, weights_only: bool = True) -> None:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=weights_only)
        except Exception as e:  # older checkpoints pickle more than tensors
            raise RuntimeError(f"could not load {path} with weights_only={weights_only}: {e}. If you trust the file, "
                               "pass weights_only=False") from e
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        state = {k.removeprefix("module."): v for k, v in state.items()}
        model_keys = set(self.clap.model.state_dict())
        state = {k: v for k, v in state.items() if k in model_keys or not k.endswith("position_ids")}
        missing, unexpected = self.clap.model.load_state_dict(state, strict=True)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise RuntimeError(f"{path} does not match the CLAP model: missing {missing[:5]}, unexpected "
                               f"{unexpected[:5]} (check amodel/enable_fusion)")

    @torch.inference_mode()
    def embed_audio(self, wavs: Sequence[Tensor], sample_rate: int) -> Tensor:
        if sample_rate != self.sample_rate:
            raise ValueError(f"LaionClapEmbedder expects {self.sample_rate} Hz audio, got {sample_rate}")
        embed = self.clap.get_audio_embedding_from_data
        return torch.cat([torch.from_numpy(embed(x=to_mono(w).cpu().numpy(), use_tensor=False)) for w in wavs]).float()

    @torch.inference_mode()
    def embed_text(self, texts: Sequence[str]) -> Tensor:
        return self.clap.get_text_embedding(list(texts), use_tensor=True).float().cpu()


def crop(wav: Tensor, length: int, mode: str) -> Tensor:
    """Deterministic crop to `length` samples: the first ones ("start") or the middle ones ("center")."""
    if wav.shape[-1] <= length:
        return wav
    start = 0 if mode == "start" else (wav.shape[-1] - length) // 2
    return wav[..., start : start + length]


class CLAPScore(ObjectStateMetric):
    """Mean cosine of CLAP embeddings of (audio, text) pairs; the AnyGPT paper reports 0.14 for text-to-music."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, embedder: AudioTextEmbedder, crop: str = "center", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(embedder, AudioTextEmbedder):
            raise TypeError("embedder needs sample_rate, window_seconds, embed_audio(wavs, sr) and embed_text(texts)")
        if crop not in ("start", "center"):
            raise ValueError(f"crop must be 'start' or 'center', got {crop!r}")
        self.embedder, self.crop = embedder, crop
        # lists of [B, D] CPU tensors, gathered as objects (a rank that scored nothing has an empty list)
        self.add_object_state("audio_features")
        self.add_object_state("text_features")

    def prepare_audio(self, wavs: Sequence[Tensor] | Tensor, sample_rate: int) -> list[Tensor]:
        rate = self.embedder.sample_rate
        length = int(round(self.embedder.window_seconds * rate))
        out = []
        for i, wav in enumerate(wavs):
            wav = to_mono(wav)[0]
            if wav.numel() == 0:
                raise ValueError(f"CLAPScore: audio clip {i} is empty")
            out.append(crop(resample(wav, sample_rate, rate), length, self.crop))
        return out

    def embed_audio(self, audio: Sequence[Tensor] | Tensor, sample_rate: int) -> Tensor:
        """L2-normalised embeddings [N, D] (float32) of clips at ``sample_rate`` (prepared as `update` does)."""
        emb = self.embedder.embed_audio(self.prepare_audio(audio, sample_rate), self.embedder.sample_rate)
        return F.normalize(emb.float(), dim=-1).to(self.device)

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        return F.normalize(self.embedder.embed_text(list(texts)).float(), dim=-1).to(self.device)

    def update(self, audio: Sequence[Tensor] | Tensor, texts: str | Sequence[str], sample_rate: int) -> None:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if len(audio) != len(texts):
            raise ValueError(f"CLAPScore.update: {len(audio)} audio clips but {len(texts)} texts")
        if not texts:
            return
        self.append_rows("audio_features", self.embed_audio(audio, sample_rate).cpu())
        self.append_rows("text_features", self.embed_texts(texts).cpu())

    def compute(self) -> Tensor:
        if not self.text_features:
            raise ValueError("CLAPScore.compute: no pairs were added (call update first)")
        cos = (torch.cat(self.audio_features) * torch.cat(self.text_features)).sum(-1)
        return cos.double().mean()
