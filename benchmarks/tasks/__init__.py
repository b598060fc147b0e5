"""Benchmark tasks: ``anygpt benchmark NAME`` (the paper's six evaluations built in, plugins' tasks beside them).

Each task is a `benchmarks.tasks.base.Task` dataclass that holds only its own parts (options, data reading, prompts,
metric, baselines); the layout around it:

- ``base.py``: the task contract (what a task provides), documented for plugin authors;
- ``options.py``: the shared options, each field saying whether it can change a prediction (the cache key);
- ``items.py``: where a task's dataset is (``--data``, default the demo corpus) and `Prediction`, one item's output;
- ``runner.py``: launch over ``--devices`` processes, model loading, the prediction loop and its cache (``cache.py``);
- ``scoring.py``: `Scored` (what ``score`` returns), the bootstrap into intervals, shared scorers;
- ``report.py``: results.json, report.html and the printed summary;
- ``registry.py`` and ``cli.py``: the built-in tasks, the ``anygpt.tasks`` entry-point group, the command line.

Every task scores the model and baselines a useless model cannot beat, each with a 95% bootstrap interval, and writes
``results.json`` (with the command that reproduces it) and ``report.html`` under ``--out``.
"""
