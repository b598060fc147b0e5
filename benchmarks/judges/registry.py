"""`load_judge(kind, path)`: the shipped tiny judge when no path is given, a real model from a local path otherwise.

Every judge carries a ``description`` (which model judged) for results.json and the HTML report.

| kind | path=None               | path given                                                                     |
|------|-------------------------|--------------------------------------------------------------------------------|
| clip | tiny open_clip (assets) | open_clip folder (``open_clip_config.json``), or a checkpoint + ``model_name`` |
| clap | tiny CLAP (assets)      | tiny CLAP folder, or a laion_clap checkpoint + ``roberta`` (roberta-base dir)  |
| asr  | tiny CTC model (assets) | CTC judge folder, or a transformers Whisper folder                             |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from anygpt import hub
from anygpt.assets import asset_path
from benchmarks.judges.asr import CtcAsr, WhisperAsr
from benchmarks.judges.clap import TinyClap
from benchmarks.judges.clip import CONFIG_NAME as OPEN_CLIP_CONFIG_NAME
from benchmarks.judges.clip import load_tiny_clip
from benchmarks.judges.folder import CONFIG_NAME
from benchmarks.metrics.clap_score import LaionClapEmbedder

JUDGE_KINDS = ("clip", "clap", "asr")


def shipped_judge_dir(kind: str) -> Path:
    """Folder of the tiny judge shipped with anygpt (trained on the demo corpus by experiments/judges/<kind>.yaml)."""
    if kind not in JUDGE_KINDS:
        raise ValueError(f"unknown judge kind {kind!r}; use one of {JUDGE_KINDS}")
    return asset_path(f"anygpt-assets:judges/{kind}")


@dataclass
class ClipJudge:
    """An open_clip model with its eval preprocess and tokenizer (what `benchmarks.metrics.CLIPScore` takes)."""

    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    description: str

    @torch.inference_mode()
    def embed_images(self, images: list) -> Tensor:
        """PIL images -> L2-normalised [B, D]."""
        pixels = torch.stack([self.preprocess(im) for im in images])
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> Tensor:
        return F.normalize(self.model.encode_text(self.tokenizer(list(texts))).float(), dim=-1)


def _judge_note(directory: Path, name: str) -> str:
    """The training note the exporters write into the config (what data, how long)."""
    try:
        note = json.loads((directory / name).read_text()).get("anygpt_judge", {})
    except (OSError, ValueError):
        return ""
    return f" [{note['trained_on']}]" if note.get("trained_on") else ""


def load_judge(kind: str, path: str | Path | None = None, device: str | torch.device = "cpu", **options: Any):
    """A judge of ``kind`` ("clip", "clap", "asr") from a path or a hub id (``openai/whisper-large-v3``);
    ``options``: ``model_name`` (open_clip architecture of a CLIP checkpoint file), ``roberta`` and ``amodel``
    (laion_clap)."""
    if kind not in JUDGE_KINDS:
        raise ValueError(f"unknown judge kind {kind!r}; use one of {JUDGE_KINDS}")
    shipped = path is None
    path = shipped_judge_dir(kind) if shipped else hub.local(path, f"{kind} judge")  # a path, or a hub id
    if not path.exists():
        hint = f" (train: anygpt fit --config experiments/judges/{kind}.yaml, copy its export here)" if shipped else ""
        raise FileNotFoundError(f"{kind} judge not found: {path}{hint}")
    if kind == "clip":
        return _load_clip(path, shipped, device, options)
    if kind == "clap":
        return _load_clap(path, shipped, device, options)
    return _load_asr(path, shipped, device)


def _load_clip(path: Path, shipped: bool, device, options: dict[str, Any]) -> ClipJudge:
    import open_clip

    if path.is_dir():
        model, preprocess, tokenizer = load_tiny_clip(path, device)
        what = "tiny open_clip judge trained on the anygpt demo corpus" if shipped else f"open_clip model from {path}"
        return ClipJudge(model, preprocess, tokenizer, what + _judge_note(path, OPEN_CLIP_CONFIG_NAME))
    name = options.get("model_name")
    if not name:
        raise ValueError(f"{path} is a checkpoint file: pass model_name too (its open_clip architecture: ViT-L-14)")
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(path), device=device)
    return ClipJudge(model.eval(), preprocess, open_clip.get_tokenizer(name), f"open_clip {name} from {path}")


def _load_clap(path: Path, shipped: bool, device, options: dict[str, Any]):
    if path.is_dir():
        judge = TinyClap.load(path, device)
        if not shipped:
            judge.description = f"tiny CLAP judge from {path}"
        judge.description += _judge_note(path, CONFIG_NAME)
        return judge
    if not options.get("roberta"):
        raise ValueError(f"{path} is a laion_clap checkpoint: also pass roberta=<local roberta-base folder>")
    amodel = options.get("amodel", "HTSAT-tiny")
    judge = LaionClapEmbedder(path, options["roberta"], amodel=amodel, device=device)
    judge.description = f"laion_clap ({amodel}) from {path}"
    return judge


def _load_asr(path: Path, shipped: bool, device):
    config = path / "config.json"
    if path.is_dir() and config.is_file() and json.loads(config.read_text()).get("model_type") == "whisper":
        return WhisperAsr(path, device)
    judge = CtcAsr.load(path, device)
    if not shipped:
        judge.description = f"tiny CTC ASR judge from {path}"
    judge.description += _judge_note(path, CONFIG_NAME)
    return judge
