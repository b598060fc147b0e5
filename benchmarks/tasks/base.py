"""The benchmark task contract: what a task (built-in or a plugin's) provides; the framework does the rest.

A task is a ``@dataclass`` subclass of `Task`:

    @dataclass
    class MotionCaption(Task):
        '''Caption motion clips; accuracy vs a constant caption.

        Args:
            split: which split to evaluate.
        '''

        name = "motion-caption"            # ``anygpt benchmark motion-caption``; unique among all tasks
        needs = ("motion",)                # modalities the checkpoint must have (else a clear error)
        output = "text"                    # "text", or the modality the model generates
        metric = "accuracy"                # the headline metric (a key of what `score` returns for the model)
        higher_is_better = {"accuracy": True}
        split: str = option("test")                   # a task option: ``--split val``; keys the prediction cache
        train_split: str = option("train", cache=False)  # only changes scoring: cached predictions are reused

        def read_items(self, root): ...            # the dataset under ``root`` (``--data``, default: demo corpus)
        def predict_batch(self, items, keys, generator): ...  # -> [Prediction], via self.item_prompt + *_predictions
        def score(self, items, preds): ...         # -> Scored on rank 0 (None on other ranks)
        def report_rows(self, items, preds, extra, indices): ...  # -> [Row] shown in report.html

Options are dataclass fields (`benchmarks.tasks.options`): the shared ones (``--ckpt``, ``--data``, ``--limit``,
``--seed``, ``--prompt.template``, ...) come from `TaskOptions`; a task adds its own with `option`, saying there
whether the option can change a prediction (``cache=False`` when it cannot; a plain default keys the cache). The
fields are the command line of ``anygpt benchmark NAME`` and the reproducing ``command`` recorded in results.json;
the class docstring's ``Args:`` section is their ``--help``.

What a task reads from the framework while it runs: ``self.root`` (the data folder), ``self.model`` (the loaded
`anygpt.generation.pipeline.AnyGPT`), ``self.device``, ``self.item_prompt(instruction, content, direction)``
(prompt ids in the template chosen by ``--prompt.template``), ``self.text_predictions`` /
``self.media_predictions`` (generate and decode a batch of prompts), ``self.shard(n)`` / ``self.gather(local, n)``
/ ``self.is_main`` (for scoring sharded over ``--devices``). Scoring returns a `Scored`: statistics
(`benchmarks.stats`: ``mean_of``, ``ratio_of``, a metric's own) for the model, each baseline (`System`) and the
reference; the runner bootstraps them into 95% intervals and paired differences, writes results.json and
report.html (`benchmarks.tasks.runner`, `.scoring`, `.report`).

Failed generations are never dropped: ``n_failed`` counts them and each task scores them as what they are (an empty
transcript is all deletions, a missing image or clip gets the metric's worst score), saying how in
``Scored.failed_as``.

Built-in tasks are listed in `benchmarks.tasks.registry`; a plugin package registers its own under the ``anygpt.tasks``
entry-point group (``motion-caption = "motion_plugin.tasks:MotionCaption"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from benchmarks.tasks.items import Prediction, locate
from benchmarks.tasks.options import option
from benchmarks.tasks.report import Row
from benchmarks.tasks.runner import Runner
from benchmarks.tasks.scoring import Scored, System

__all__ = ["Prediction", "Row", "Scored", "System", "Task", "locate", "option"]


@dataclass
class Task(Runner):
    """A benchmark task: class attributes describing it, its options as dataclass fields, and four methods (the
    module docstring is the contract)."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    output: ClassVar[str]
    metric: ClassVar[str]
    higher_is_better: ClassVar[dict[str, bool]]

    def read_items(self, root: Path) -> list[Any]:
        """The evaluated items (reader records, ideally dataclasses: their files are hashed for the prediction
        cache), already cut to ``self.limit``."""
        raise NotImplementedError

    def keys(self, items: Sequence[Any]) -> list[str]:
        """A unique key per item (names its cached prediction and media file)."""
        return [str(getattr(it, "key", None) or getattr(it, "utt_id", None) or it.path) for it in items]

    def predict_batch(self, items: Sequence[Any], keys: Sequence[str], generator: torch.Generator
                      ) -> list[Prediction]:
        """The model's predictions for a batch of this rank's items, in order, one per key."""
        raise NotImplementedError

    def score(self, items: Sequence[Any], preds: Sequence[Prediction]) -> Scored | None:
        """Score every item (this rank scores its shard; gather with `gather`, or score on rank 0 alone). Returns
        the `Scored` on rank 0, None on the other ranks."""
        raise NotImplementedError

    def report_rows(self, items: Sequence[Any], preds: Sequence[Prediction], extra: Mapping[int, Mapping[str, Any]],
                    indices: Sequence[int]) -> list[Row]:
        """Report rows for the sampled items ``indices``; ``extra`` is `Scored.extra`."""
        raise NotImplementedError
