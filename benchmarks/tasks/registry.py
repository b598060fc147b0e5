"""Every task ``anygpt benchmark NAME`` can run: the built-in ones and those plugins register.

A plugin package registers a task under the ``anygpt.tasks`` entry-point group, naming a `benchmarks.tasks.base.Task`
subclass whose ``name`` is the entry point's name::

    [project.entry-points."anygpt.tasks"]
    motion-caption = "motion_plugin.tasks:MotionCaption"

Nothing is imported until a task is run (or asked for its ``--help``): listing tasks reads names only. A plugin that
fails to load, names something that is not a task, or takes a name that is already taken is refused with a message
naming its entry point (and, for a clash, both claimants); it never shadows a built-in task.
"""

from __future__ import annotations

import dataclasses
import typing

from anygpt.plugins import Entry, Registry
from benchmarks.tasks.base import Task

ENTRY_POINT_GROUP = "anygpt.tasks"

BUILTIN_TASKS: dict[str, str] = {
    "coco-caption": "benchmarks.tasks.coco_caption:CocoCaption",
    "coco-t2i": "benchmarks.tasks.coco_t2i:CocoT2i",
    "librispeech-asr": "benchmarks.tasks.librispeech_asr:LibrispeechAsr",
    "vctk-tts": "benchmarks.tasks.vctk_tts:VctkTts",
    "musiccaps-caption": "benchmarks.tasks.musiccaps_caption:MusiccapsCaption",
    "musiccaps-gen": "benchmarks.tasks.musiccaps_gen:MusiccapsGen",
}
HOOKS = ("read_items", "predict_batch", "score", "report_rows")


class TaskRegistryError(ValueError):
    """A task name that no task has, a plugin task that cannot be used, or two tasks claiming one name."""


TASKS = Registry(ENTRY_POINT_GROUP, "task", BUILTIN_TASKS, TaskRegistryError, "its entry point and its class's name")
available = TASKS.available


def load_task(name: str) -> type[Task]:
    """The task class registered as ``name``, imported now and checked against the task contract."""
    entry, cls = TASKS.load(name, "benchmark task")
    check_task_class(cls, entry)
    return cls


def check_task_class(cls: object, entry: Entry) -> None:
    """Refuse what the runner could not run, naming the entry point and what is missing."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TaskRegistryError(f"{entry.origin} names {cls!r}, not a subclass of benchmarks.tasks.base.Task")
    if getattr(cls, "name", None) != entry.name:
        raise TaskRegistryError(f"{entry.origin} names {cls.__qualname__}, whose name attribute is "
                                f"{getattr(cls, 'name', None)!r}: the class's name must be the entry point's, "
                                "since results.json records `anygpt benchmark <name>`")
    missing = [h for h in HOOKS if getattr(cls, h) is getattr(Task, h)]
    missing += [a for a in ("output", "metric", "higher_is_better") if not hasattr(cls, a)]
    if missing:
        raise TaskRegistryError(f"{entry.origin}: {cls.__qualname__} does not define {', '.join(missing)}")
    if cls.metric not in cls.higher_is_better:
        raise TaskRegistryError(f"{entry.origin}: {cls.__qualname__}.higher_is_better has no entry for its "
                                f"metric {cls.metric!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    for klass in cls.__mro__:
        hints = vars(klass).get("__annotations__", {})
        plain = [a for a, hint in hints.items() if a not in fields and not _is_classvar(hint)]
        if plain:
            raise TaskRegistryError(f"{entry.origin}: {klass.__qualname__} declares options {plain} but is not a "
                                    "dataclass: decorate it with @dataclass so they become command-line options")


def _is_classvar(hint: object) -> bool:
    text = hint if isinstance(hint, str) else repr(hint)
    return hint is typing.ClassVar or "ClassVar" in text
