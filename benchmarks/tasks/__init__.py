"""The paper's six evaluations as `anygpt benchmark NAME` tasks; each module's ``run`` is the command.

Every task reads the standard dataset layout from ``--data`` (default: the demo corpus), decodes with the paper's
settings, shards items over ``--devices`` processes, and writes ``results.json`` (value, baseline, judge, decoding)
and ``report.html`` (inputs and outputs to look at and listen to) under ``--out``.
"""

TASKS: dict[str, str] = {
    "coco-caption": "benchmarks.tasks.coco_caption:run",
    "coco-t2i": "benchmarks.tasks.coco_t2i:run",
    "librispeech-asr": "benchmarks.tasks.librispeech_asr:run",
    "vctk-tts": "benchmarks.tasks.vctk_tts:run",
    "musiccaps-caption": "benchmarks.tasks.musiccaps_caption:run",
    "musiccaps-gen": "benchmarks.tasks.musiccaps_gen:run",
}
