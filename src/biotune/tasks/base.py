"""What every task shares: the feature set the engine trains on, options, and the `Task` contract.

A task turns typed examples into model inputs (`featurize`), names the head (which fixes the loss),
and turns raw model outputs back into predictions in the examples' own units (`decode`), the same
units `gold` returns and `biotune.metrics.compute` scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from transformers import PreTrainedTokenizerBase

from biotune.errors import ConfigError, DataError

HeadKind = Literal["token", "sequence", "regression", "multilabel"]

# The one ignore index: cross-entropy skips these label positions (specials, later sub-tokens, context words).
IGNORE_INDEX = -100


@dataclass
class FeatureSet:
    """Model inputs for a list of examples; token tasks may have several features per example."""

    features: list[dict[str, Any]]
    word_index: list[list[int]] | None
    n_examples: int
    n_truncated: int = 0
    n_split: int = 0
    lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class TaskOptions:
    """Choices that change featurization.

    placeholders_as_tokens: keep RE entity placeholders (`@GENE$`) as one token each (see placeholders.py).
    window_overlap: token tasks, share of a window's sub-token budget repeated from the previous window as
        context when a sentence is longer than the max length; 0 gives plain consecutive windows.
    pair_encoding: similarity, `cross` (BLURB: one `[CLS] a [SEP] b [SEP]` input, a regression head) or
        `siamese` (each sentence encoded alone, `input_ids_b` etc. for the second; scored by cosine).
    """

    placeholders_as_tokens: bool = True
    window_overlap: float = 0.5
    pair_encoding: Literal["cross", "siamese"] = "cross"

    def __post_init__(self) -> None:
        if not 0.0 <= self.window_overlap < 1.0:
            raise ConfigError(f"window_overlap must be in [0, 1), got {self.window_overlap}")


class Task(ABC):
    """One implementation per task type; see the module docstring for the contract."""

    task_type: str
    head: HeadKind

    def __init__(
        self,
        labels: Sequence[str],
        negative_label: str | None = None,
        options: TaskOptions | None = None,
    ) -> None:
        self.labels: list[str] = list(labels)
        self.negative_label = negative_label
        self.options = options or TaskOptions()
        self._label_ids = {label: i for i, label in enumerate(self.labels)}

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @abstractmethod
    def featurize(
        self, examples: Sequence[Any], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> FeatureSet:
        """Tokenize with explicit truncation; every example is represented, nothing silently dropped."""

    @abstractmethod
    def gold(self, examples: Sequence[Any]) -> list[Any]:
        """Gold answers in the units the metrics score."""

    @abstractmethod
    def decode(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[Any]:
        """Raw model outputs (one array per feature) to predictions in the units of `gold`."""

    @abstractmethod
    def probabilities(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[Any]:
        """Per example: label -> probability (token tasks: one such dict per word; regression: None)."""

    def special_tokens(self, examples: Sequence[Any]) -> list[str]:
        """Strings that must stay single tokens (RE placeholders); add them to the tokenizer first."""
        return []

    def prediction_records(self, examples: Sequence[Any], predictions: Sequence[Any]) -> list[dict[str, Any]]:
        """JSON-ready rows for a predictions file, traceable to the source line or document."""
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        return [
            {"id": example.id, "source": example.source, "gold": _jsonable(gold), "pred": _jsonable(pred)}
            for example, gold, pred in zip(examples, self.gold(examples), predictions, strict=True)
        ]

    def label_id(self, label: str, example: Any) -> int:
        try:
            return self._label_ids[label]
        except KeyError:
            raise DataError(
                example.source,
                None,
                f"label {label!r} of example {example.id!r} is not one of the task's labels {self.labels}",
                "check the file is for this dataset, or give the task the full label list",
            ) from None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task_type={self.task_type!r}, head={self.head!r}, labels={self.labels})"
        )


def require_fast_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Word alignment and truncation counts come from the fast (Rust) tokenizer's encodings."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"{type(tokenizer).__name__} is a slow tokenizer; biotune needs a fast one "
            "(load it with AutoTokenizer.from_pretrained(..., use_fast=True))"
        )


def check_outputs(features: FeatureSet, outputs: Sequence[np.ndarray]) -> None:
    if len(outputs) != len(features.features):
        raise ValueError(f"{len(outputs)} model outputs for {len(features.features)} features")


def check_examples(examples: Sequence[Any], features: FeatureSet) -> None:
    if len(examples) != features.n_examples:
        raise ValueError(f"{len(examples)} examples but the features were built from {features.n_examples}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
