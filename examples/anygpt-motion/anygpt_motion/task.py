"""``anygpt benchmark motion-caption``: caption motion clips, scored by exact-match accuracy against the reference
caption; the baseline always answers the most common caption of the training split.

The data folder (``--data``) holds ``motion/{split}.jsonl``, one clip per line:
``{"key": "c0", "motion": "clips/c0.npy", "caption": "a circle"}`` (paths relative to the data folder).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from anygpt.generation.pipeline import Media
from benchmarks.stats import mean_of
from benchmarks.tasks.base import Prediction, Row, Scored, System, Task, locate, option


@dataclass
class Clip:
    key: str
    path: Path
    caption: str


def read_clips(root: Path, split: str) -> list[Clip]:
    """The clips of ``motion/{split}.jsonl`` under ``root``; a bad line names the file and line."""
    path = locate(root, (f"motion/{split}.jsonl",), f"motion-caption {split} split (motion/{split}.jsonl)")
    clips = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            clips.append(Clip(str(row["key"]), root / row["motion"], str(row["caption"])))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: expected {{key, motion, caption}} ({err})") from None
    return clips


def same(a: str, b: str) -> float:
    """Exact match after case and trailing punctuation are set aside."""
    return float(a.strip().rstrip(".").lower() == b.strip().rstrip(".").lower())


@dataclass
class MotionCaption(Task):
    """Caption the motion clips of a split; exact-match accuracy.

    Args:
        split: the evaluated split (``motion/SPLIT.jsonl``).
        train_split: the split whose most common caption is the baseline's answer.
        instruction: what the model is asked.
    """

    name = "motion-caption"
    needs = ("motion",)
    output = "text"
    metric = "accuracy"
    higher_is_better = {"accuracy": True}

    split: str = option("test")
    train_split: str = option("train", cache=False)
    instruction: str = option("Describe this motion.")

    def read_items(self, root: Path) -> list[Clip]:
        return read_clips(root, self.split)[: self.limit]

    def keys(self, items) -> list[str]:
        return [it.key for it in items]

    def predict_batch(self, items, keys, generator) -> list[Prediction]:
        prompts = [self.item_prompt(self.instruction, [Media("motion", str(it.path))], "x2text") for it in items]
        return self.text_predictions(keys, prompts, generator)

    def score(self, items, preds) -> Scored | None:
        model = mean_of([same(p.text, it.caption) for it, p in zip(items, preds, strict=True)])
        baselines = {}
        if self.baseline:
            common = Counter(c.caption for c in read_clips(self.root, self.train_split)).most_common(1)[0][0]
            baselines["most-common-caption"] = System(f"always '{common}'",
                                                      {"accuracy": mean_of([same(common, it.caption) for it in items])})
        return Scored(model={"accuracy": model}, baselines=baselines, judge="none (exact match)",
                      failed_as="a wrong caption")

    def report_rows(self, items, preds, extra, indices) -> list[Row]:
        return [Row().text("clip", str(items[i].path)).text("generated caption", preds[i].text)
                .text("reference", items[i].caption) for i in indices]
