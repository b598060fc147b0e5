"""The paper's six evaluations as `anygpt benchmark NAME` tasks; each module's ``run`` is the command.

Each task is a `benchmarks.tasks.base.Task` subclass that holds only its own parts (data reading, prompts, metric,
baselines); the base class holds the shared options and the plumbing. Every task reads the standard dataset layout
from ``--data`` (default: the demo corpus), decodes with the paper's settings, shards items over ``--devices``
processes, scores the model, baselines a useless model cannot beat and the judge's reference on real pairs, each with
a 95% bootstrap interval, and writes ``results.json`` (with the command that reproduces it) and ``report.html``
(numbers, then inputs and outputs to look at and listen to) under ``--out``.
"""

TASKS: dict[str, str] = {
    "coco-caption": "benchmarks.tasks.coco_caption:run",
    "coco-t2i": "benchmarks.tasks.coco_t2i:run",
    "librispeech-asr": "benchmarks.tasks.librispeech_asr:run",
    "vctk-tts": "benchmarks.tasks.vctk_tts:run",
    "musiccaps-caption": "benchmarks.tasks.musiccaps_caption:run",
    "musiccaps-gen": "benchmarks.tasks.musiccaps_gen:run",
}
