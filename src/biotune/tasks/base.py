"""What every task shares: the feature set the engine trains on, options, and the `Task` contract.

A task type owns everything that depends on it: how its files are read (`read`), what its own files
default to, how typed examples become model inputs (`featurize`), its head kind (which fixes the loss,
the label batch and the model class, see heads.py), how raw model outputs become predictions in the
examples' own units (`decode`, the units `gold` returns and `score` scores), its trivial baseline, what
`biotune predict` reads and writes for it, and its part of the model card.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from biotune.data.readers import ReadOptions
from biotune.errors import ConfigError, DataError
from biotune.tasks.heads import IGNORE_INDEX, Head, HeadKind, get_head
from biotune.textsplit import Word

__all__ = [
    "IGNORE_INDEX",
    "OWN_FILE_HYPERPARAMS",
    "FeatureSet",
    "HeadKind",
    "PredictInput",
    "Task",
    "TaskOptions",
    "check_examples",
    "check_outputs",
    "require_fast_tokenizer",
]

# Own files have no published setting: the same start for every task type (the max length is per type).
OWN_FILE_HYPERPARAMS: dict[str, Any] = {
    "batch_size": 16,
    "learning_rate": 3e-5,
    "epochs": 3,
    "warmup_ratio": 0.1,
}


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


@dataclass
class PredictInput:
    """One raw input of `biotune predict` as the task reads it: its examples, and for token tasks the text
    with its words and sentences (word ranges), which the output row's character offsets come from."""

    examples: list[Any]
    text: str = ""
    words: list[Word] = field(default_factory=list)
    sentences: list[tuple[int, int]] = field(default_factory=list)


class Task(ABC):
    """One implementation per task type; see the module docstring for the contract."""

    task_type: ClassVar[str]
    head: HeadKind
    # what the BLURB table calls the metric and the size unit, for users' own files of this type
    metric_name: ClassVar[str]
    unit: ClassVar[str]
    # own files: the max length (sub-tokens) and the hyper-parameters a run starts from
    own_max_length: ClassVar[int]
    own_hyperparams: ClassVar[dict[str, Any]] = OWN_FILE_HYPERPARAMS
    # own files: labels are names that dev/test may only use when train has them (not scores or indices)
    labels_by_name: ClassVar[bool] = True
    # the model card: what the model does, an example input, a note on what biotune predict reads
    description: ClassVar[str]
    card_note: ClassVar[str | None] = None
    snippet_truncation: ClassVar[str] = "True"
    # predict: the two fields an input object of a pair task holds (None: one text); whether texts mark
    # entities with placeholders (RE); whether a probability threshold applies (multi-label)
    pair_fields: ClassVar[tuple[str, str] | None] = None
    entity_placeholders: ClassVar[bool] = False
    uses_threshold: ClassVar[bool] = False

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

    # sentence pairs that can also be encoded one sentence at a time and compared by cosine: the siamese
    # pair encoding and the zero-shot cosine baseline
    compares_sentence_pairs: bool = False

    def train_target_mean(self, train: Sequence[Any]) -> float | None:
        """Where a regression head starts (the mean training target); None for the other heads."""
        return None

    # ------------------------------------------------------------------------------------ files and metric

    @classmethod
    @abstractmethod
    def read(
        cls, path: Path | str, labels: Collection[str] | None = None, options: ReadOptions | None = None
    ) -> list[Any]:
        """Read one file of this task type (biotune.data.readers) into typed examples.

        `options` None: the type's BLURB layout (registry files); given: a user's own file in the format
        asked for, or (`auto`) the one its extension and content show (`readers.detect_format`)."""

    @classmethod
    def own_labels(cls, train_path: Path, train: Sequence[Any]) -> tuple[str, ...]:
        """Own files: the label set, from the training file."""
        return ()

    @classmethod
    def label_names(cls, example: Any, names: Sequence[str] = ()) -> list[str]:
        """The labels one example carries, by name (`names`: the label names of index labels)."""
        return []

    @classmethod
    def label_line(cls, example: Any, position: int) -> int:
        """The 1-based line of the `position`-th label of `label_names(example)`: the example's own line."""
        return int(example.source.rsplit(":", 1)[1])

    @classmethod
    def own_negative_label(cls, labels: tuple[str, ...], negative_label: str | None) -> str | None:
        """Own files: the label that means "no relation", for the types scored without it (RE)."""
        if negative_label is not None:
            raise ConfigError(f"--negative-label only applies to task type 're', not {cls.task_type!r}")
        return None

    @classmethod
    def count_units(cls, examples: Sequence[Any]) -> int:
        """BLURB's size unit of a split; one per example unless the type counts otherwise."""
        return len(examples)

    @classmethod
    def score_summary(cls, examples: Sequence[Any]) -> dict[str, float] | None:
        """`data check --file`: a summary of gold scores, for types whose gold is a score."""
        return None

    @classmethod
    @abstractmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        """The BLURB metric of this type (biotune.metrics); `negative_label` is RE's no-relation class."""

    @classmethod
    def from_json(cls, value: Any) -> Any:
        """A gold or predicted value as a predictions file holds it, back in the units `score` takes."""
        return value

    @abstractmethod
    def trivial_predictions(self, train: Sequence[Any], examples: Sequence[Any]) -> list[Any]:
        """The failure line: what a predictor that learnt nothing but the training labels says."""

    # ------------------------------------------------------------------------------------ head

    @property
    def output_head(self) -> Head:
        return get_head(self.head)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        return self.output_head.loss(logits, labels, reduction)

    def loss_units(self, features: Sequence[dict[str, Any]]) -> list[int]:
        return self.output_head.loss_units(features)

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

    # ------------------------------------------------------------------------------------ predict

    @abstractmethod
    def predict_input(self, name: str, texts: tuple[str, ...]) -> PredictInput:
        """A validated raw input (one text, or the `pair_fields` values) as examples; `name` says where."""

    def example_scores(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Per example, the model's numbers in `labels` order (probabilities by default)."""
        return [
            np.array([rows[label] for label in self.labels])
            for rows in self.probabilities(examples, features, outputs)
        ]

    def input_scores(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """The scores of one input from those of its examples (a document's sentences, in order)."""
        return np.concatenate(parts, axis=0)

    @abstractmethod
    def prediction_row(
        self, prepared: PredictInput, scores: np.ndarray, threshold: float, entity_type: str
    ) -> dict[str, Any]:
        """The JSON-ready row of one input (see biotune.predict's module doc for each type's row).

        threshold: multi-label probability cut; entity_type: the label of untyped entity tags (B/I).
        """

    # ------------------------------------------------------------------------------------ model card

    @classmethod
    def hub_labels(cls, labels: Sequence[str], entity_type: str) -> list[str]:
        """The label names an exported `config.json` gives `transformers.pipeline` (`id2label`)."""
        return list(labels)

    @classmethod
    @abstractmethod
    def card_example(cls, placeholders: Sequence[str]) -> Any:
        """An example input for the card's snippets: a text, or a pair of texts for pair tasks."""

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
