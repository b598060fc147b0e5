"""The paper's evaluation metrics as torchmetrics Metrics, usable without the rest of anygpt."""

from benchmarks.metrics.cider import CIDEr, cider_d
from benchmarks.metrics.clap_score import AudioTextEmbedder, CLAPScore, LaionClapEmbedder
from benchmarks.metrics.clip_score import CLIPScore
from benchmarks.metrics.frechet import FrechetDistance
from benchmarks.metrics.speaker_similarity import (
    ResemblyzerEncoder,
    SpeakerEncoder,
    SpeakerSimilarity,
    WavLMSpeakerEncoder,
)
from benchmarks.metrics.wer import WordErrorRate

__all__ = ["CIDEr", "CLAPScore", "CLIPScore", "FrechetDistance", "AudioTextEmbedder", "LaionClapEmbedder",
           "ResemblyzerEncoder", "SpeakerEncoder", "SpeakerSimilarity", "WavLMSpeakerEncoder", "WordErrorRate",
           "cider_d"]
