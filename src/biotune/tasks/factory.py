"""Build the task object for a task type (or a registry dataset spec)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biotune.config import TASK_TYPES
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
assert set(TASK_CLASSES) == set(TASK_TYPES), "every configurable task type needs a task class"


def get_task(
    task_type: str,
    labels: Sequence[str],
    negative_label: str | None = None,
    options: TaskOptions | None = None,
) -> Task:
    cls = TASK_CLASSES.get(task_type)
    if cls is None:
        raise ConfigError(f"unknown task type {task_type!r}; choose one of {', '.join(TASK_TYPES)}")
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
