"""The task-type registry: one line per task type, and the task object for a type (or a dataset spec)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, get_args

from biotune.config import TaskType
from biotune.data.readers import ReadOptions
from biotune.errors import ConfigError
from biotune.tasks.base import Task, TaskOptions
from biotune.tasks.sequence import (
    ClassificationTask,
    MultilabelTask,
    QuestionAnsweringTask,
    RelationTask,
    SimilarityTask,
)
from biotune.tasks.token import NerTask, PicoTask

TASK_CLASSES: dict[str, type[Task]] = {
    cls.task_type: cls
    for cls in (
        NerTask,
        PicoTask,
        RelationTask,
        ClassificationTask,
        SimilarityTask,
        MultilabelTask,
        QuestionAnsweringTask,
    )
}
TASK_TYPES: tuple[str, ...] = tuple(TASK_CLASSES)
# TrainConfig validates `task_type` without importing the tasks (and torch): its Literal must list the same
assert set(get_args(TaskType)) == set(TASK_TYPES), "biotune.config.TaskType must name every task type"


def task_class(task_type: str) -> type[Task]:
    """The class of a task type: what it reads, scores and writes, without labels (see `get_task`)."""
    cls = TASK_CLASSES.get(task_type)
    if cls is None:
        raise ConfigError(f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
    return cls


def read_file(
    task_type: str,
    path: Path | str,
    labels: Collection[str] | None = None,
    options: ReadOptions | None = None,
) -> list[Any]:
    """Read one file of the given task type. For multilabel, `labels` fixes the number of label columns.

    `options` None reads BLURB's layout of the type; a user's file takes ReadOptions (format, tag names)."""
    return task_class(task_type).read(path, labels, options)


def get_task(
    task_type: str,
    labels: Sequence[str],
    negative_label: str | None = None,
    options: TaskOptions | None = None,
) -> Task:
    cls = task_class(task_type)
    labels = list(labels)
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{task_type}: labels must be distinct, got {labels}")
    if cls.head != "regression" and len(labels) < 2:
        raise ConfigError(f"{task_type}: needs at least two labels, got {labels}")
    if negative_label is not None and negative_label not in labels:
        raise ConfigError(f"{task_type}: negative label {negative_label!r} is not one of the labels {labels}")
    return cls(labels, negative_label=negative_label, options=options)


def task_for_spec(spec: Any, options: TaskOptions | None = None) -> Task:
    """The task for a registry DatasetSpec (`task_type`, `labels`, `negative_label`)."""
    return get_task(spec.task_type, spec.labels, getattr(spec, "negative_label", None), options)
