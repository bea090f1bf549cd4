"""Task types: each one class that owns its reader, featurize/decode, head kind, metric, baseline, predict
input and output, and model-card text; `factory.TASK_CLASSES` is the registry."""

from biotune.tasks.base import (
    IGNORE_INDEX,
    FeatureSet,
    HeadKind,
    PredictInput,
    Task,
    TaskOptions,
    require_fast_tokenizer,
)
from biotune.tasks.factory import TASK_CLASSES, TASK_TYPES, get_task, read_file, task_class, task_for_spec
from biotune.tasks.heads import HEADS, Head, get_head
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
    "HEADS",
    "TASK_CLASSES",
    "TASK_TYPES",
    "ClassificationTask",
    "FeatureSet",
    "Head",
    "HeadKind",
    "MultilabelTask",
    "NerTask",
    "PicoTask",
    "PredictInput",
    "QuestionAnsweringTask",
    "RelationTask",
    "SimilarityTask",
    "Task",
    "TaskOptions",
    "TokenTask",
    "add_placeholder_tokens",
    "find_placeholders",
    "get_head",
    "get_task",
    "placeholder_pieces",
    "read_file",
    "require_fast_tokenizer",
    "task_class",
    "task_for_spec",
]
