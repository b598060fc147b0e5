"""Generation: static-KV-cache decoding, logits processors, beam search, constrained decoding, presets."""

from anygpt.generation.constrained import ModalityConstraint
from anygpt.generation.decoder import GenerationResult
from anygpt.generation.options import PRESETS, GenerationConfig, preset
from anygpt.generation.processors import RepetitionPenalty, SuppressUntil, Temperature, TopK, TopP, apply_processors
from anygpt.generation.sampling import generate

__all__ = ["PRESETS", "GenerationConfig", "GenerationResult", "ModalityConstraint", "RepetitionPenalty",
           "SuppressUntil", "Temperature", "TopK", "TopP", "apply_processors", "generate", "preset"]
