"""The demo's speech tokenizer: 25 Hz (hop 640), 8 levels x 256 codes, level 1 distilled to espeak phones.

25 Hz halves the LLM sequence length of the paper's 50 Hz; espeak speaks ~12 phones/s, so each phone still spans two or
more frames. 256 codes are plenty for ~60 phone classes and keep the demo vocabulary small. With no HuBERT weights
available offline, the synthesizer's own phoneme timing is the most direct content signal for level 1
(``semantic_teacher: phones`` of `SpeechTokenizerTrainer`, ``experiments/tokenizers/demo_speech.yaml``): it pushes
level 1 to encode *what* is said while levels 2-8 keep *how* it sounds. Shipped in ``anygpt/assets/tokenizers/speech``.
"""

from __future__ import annotations

from typing import Any

from anygpt.modalities.speech.codec import SpeechTokenizerCodec

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


class TinySpeechCodec(SpeechTokenizerCodec):
    """`SpeechTokenizerCodec` with the demo configuration (``config`` entries override `TINY_CONFIG`'s)."""

    default_checkpoint = "anygpt-assets:tokenizers/speech"

    def __init__(self, config: dict[str, Any] | None = None, soundstorm: str | None = None, soundstorm_steps: int = 3,
                 prompt_seconds: float | None = 1.5, soundstorm_schedule: str = "release") -> None:
        super().__init__(config={**TINY_CONFIG, **(config or {})}, soundstorm=soundstorm,
                         soundstorm_steps=soundstorm_steps, prompt_seconds=prompt_seconds,
                         soundstorm_schedule=soundstorm_schedule)
