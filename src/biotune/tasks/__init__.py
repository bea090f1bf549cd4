"""Task types: featurize examples for a tokenizer, name the head, decode predictions back to example units."""

from biotune.tasks.base import IGNORE_INDEX, FeatureSet, HeadKind, Task, TaskOptions, require_fast_tokenizer
from biotune.tasks.factory import TASK_CLASSES, get_task, task_for_spec
from biotune.tasks.placeholders import add_placeholder_tokens, find_placeholders, placeholder_pieces
from biotune.tasks.sequence import (
    ClassificationTask,
    MultilabelTask,
    QuestionAnsweringTask,
    RelationTask,
    SimilarityTask,
)
from biotune.tasks.token import NerTask, PicoTask, TokenTask

__all__ = [
    "IGNORE_INDEX",
    "TASK_CLASSES",
    "ClassificationTask",
    "FeatureSet",
    "HeadKind",
    "MultilabelTask",
    "NerTask",
    "PicoTask",
    "QuestionAnsweringTask",
    "RelationTask",
    "SimilarityTask",
    "Task",
    "TaskOptions",
    "TokenTask",
    "add_placeholder_tokens",
    "find_placeholders",
    "get_task",
    "placeholder_pieces",
    "require_fast_tokenizer",
    "task_for_spec",
]
