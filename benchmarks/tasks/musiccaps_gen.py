"""Text-to-music on MusicCaps captions, scored with the CLAP score between the generated music and its caption (the
paper: 0.14; top-p 1.0 with repetition penalty 1.15, the "paper/music" preset).

Baselines (same metric, same run, same redraws):
- ``shuffled``: the generated music scored against other items' captions (the judge's chance level, a floor);
- ``random-train-clip``: a real random *training* clip for each caption (what returning any real music gets).
Reference (ceiling): the real clips against their captions. A caption that got no decodable music scores -1 (the
worst cosine) and is counted in ``n_failed``.

Set distances (lower is better; no interval, read against the real-halves floor and n; failed clips left out):
``FD (tiny CLAP judge features)`` on the judge's audio embeddings (``FAD (laion_clap judge embeddings)`` with a
laion_clap ``--judge``), and with ``--fad_embedder`` FAD on EnCodec 24 kHz encoder frames (fadtk's ``encodec-emb``),
each for the generated clips, the random-training-clip baseline and two halves of the real clips, against the real
clips. Generated clips are written to disk as they are made and read back
``batch_size`` at a time for scoring; only embeddings are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anygpt.prompts import TEXT2X_INSTRUCTIONS
from benchmarks.judges.encodec_features import EncodecFeatures
from benchmarks.tasks.base import Prediction, Row, Scored, Task, option
from benchmarks.tasks.musiccaps_caption import audio_file_embedder, clap_metric, random_training_picks, read_clips
from benchmarks.tasks.scoring import features_block, score_text_to_media, text_to_media_rows


@dataclass
class MusiccapsGen(Task):
    """Generate music for MusicCaps captions and score CLAP(generated music, caption).

    Args:
        audio_dir: folder of the real clips (default: audio/ beside the csv); they appear in the report, the
            reference score and the random-training-clip baseline.
        split: the csv's split column value, or "test" = is_audioset_eval for the original csv.
        train_split: the split the random-training-clip baseline draws from.
        instruction: the text-to-music instruction.
        fad_embedder: the encodec package's 24 kHz weights file (encodec_24khz-d7cc33bc.th): also report FAD on its
            encoder frames against the real clips.
    """

    name = "musiccaps-gen"
    needs = ("music",)
    output = "music"
    metric = "clap_score"
    higher_is_better = {"clap_score": True}

    audio_dir: Path | None = option(None)
    split: str = option("test")
    train_split: str = option("train", cache=False)
    instruction: str = option(TEXT2X_INSTRUCTIONS["music"][0])
    fad_embedder: Path | None = option(None, cache=False)

    def read_items(self, root: Path) -> list:
        return read_clips(root, self.split, self.audio_dir, self.limit)

    def keys(self, items) -> list[str]:
        return [c.ytid for c in items]

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [c.caption], "text2x") for c in items]
        return self.media_predictions(keys, prompts, generator)

    def score(self, items, preds) -> Scored | None:
        judge, metric = clap_metric(self)
        notes: list[str] = []
        picks = random_training_picks(self, items, "random-train-clip", notes)
        paths = [p.path for p in picks] if picks else None
        name = "FD (tiny CLAP judge features)" if self.judge is None else (
            "FD (CLAP judge features)" if Path(self.judge).is_dir() else "FAD (laion_clap judge embeddings)")
        scored = score_text_to_media(self, items, preds, metric.embed_texts, audio_file_embedder(metric), paths,
                                     "clip", "clap_score", judge=judge.description,
                                     failed_as="the worst CLAP score, -1", notes=notes, distance=name)
        if self.fad_embedder is not None:
            fad = features_block(self, "FAD (EnCodec 24 kHz)", EncodecFeatures(self.fad_embedder, self.device), items,
                                 preds, paths, ("random-train-clip", "a random real training clip per caption"))
            if scored is not None:
                scored.set_distances["fad"] = fad
        return scored

    def report_rows(self, items, preds, extra: Mapping[int, Mapping[str, Any]], indices) -> list[Row]:
        return text_to_media_rows(items, preds, extra, indices, "music", "clip")
