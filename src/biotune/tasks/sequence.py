"""Sequence-level tasks: one feature per example, one prediction per example.

- RE (ChemProt, DDI, GAD) and single-label classification: one text, classified from the pooled output;
  RE keeps its entity placeholders as single tokens by default (see placeholders.py).
- QA (PubMedQA, BioASQ): the (question, context) pair; only the context side is ever cut.
- Similarity (BIOSSES): the (sentence, sentence) pair, one regression output.
- Multi-label (HoC): the whole abstract (joined sentences), one sigmoid output per label.

Truncated examples are counted from the fast tokenizer's own record of what it cut (`overflowing`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, softmax
from transformers import BatchEncoding, PreTrainedTokenizerBase

from biotune.data.examples import LabeledDocument, LabeledText, Question, ScoredPair
from biotune.errors import ConfigError, DataError
from biotune.tasks.base import (
    FeatureSet,
    HeadKind,
    Task,
    check_examples,
    check_outputs,
    require_fast_tokenizer,
)
from biotune.tasks.placeholders import find_placeholders, is_single_token

Encoded = tuple[list[dict[str, list[int]]], list[bool]]


class _OneFeaturePerExample(Task):
    """Shared featurization: texts (or text pairs) and one training target per example."""

    @abstractmethod
    def _texts(self, examples: Sequence[Any]) -> tuple[list[str], list[str] | None]:
        """The texts to encode: one list, or two for pair tasks."""

    @abstractmethod
    def _target(self, example: Any) -> Any:
        """The training target stored as the feature's `labels`."""

    def _encode(
        self, tokenizer: PreTrainedTokenizerBase, first: list[str], second: list[str] | None, max_length: int
    ) -> Encoded:
        return _encoded(tokenizer(first, second, truncation=True, max_length=max_length))

    def featurize(
        self, examples: Sequence[Any], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> FeatureSet:
        require_fast_tokenizer(tokenizer)
        if max_length <= tokenizer.num_special_tokens_to_add(pair=self._is_pair()):
            raise ConfigError(f"max_length {max_length} leaves no room for text next to the special tokens")
        targets = [self._target(example) for example in examples]
        first, second = self._texts(examples)
        inputs, truncated = self._encode(tokenizer, first, second, max_length) if examples else ([], [])
        features = [
            {**model_inputs, "labels": target, "example_index": i}
            for i, (model_inputs, target) in enumerate(zip(inputs, targets, strict=True))
        ]
        return FeatureSet(
            features=features,
            word_index=None,
            n_examples=len(examples),
            n_truncated=sum(truncated),
            n_split=0,
            lengths=[len(f["input_ids"]) for f in features],
        )

    def _is_pair(self) -> bool:
        return False

    def _rows(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> np.ndarray:
        """Model outputs as an [examples, num_labels] array in example order."""
        check_examples(examples, features)
        check_outputs(features, outputs)
        width = max(self.num_labels, 1)
        rows = np.full((len(examples), width), np.nan, dtype=np.float64)
        for feature, output in zip(features.features, outputs, strict=True):
            values = np.asarray(output, dtype=np.float64).reshape(-1)
            if values.size != width:
                raise ValueError(f"model output of {values.size} values; this task's head has {width}")
            rows[feature["example_index"]] = values
        if np.isnan(rows).any():
            raise ValueError("some examples have no model output")
        return rows


class _SingleLabelTask(_OneFeaturePerExample):
    """Softmax over the labels; predictions are the label strings as in the files."""

    head: HeadKind = "sequence"

    def _target(self, example: Any) -> int:
        return self.label_id(example.label, example)

    def gold(self, examples: Sequence[Any]) -> list[str]:
        return [example.label for example in examples]

    def decode(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[str]:
        return [self.labels[k] for k in self._rows(examples, features, outputs).argmax(axis=-1)]

    def probabilities(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[dict[str, float]]:
        probs = softmax(self._rows(examples, features, outputs), axis=-1)
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs]


class ClassificationTask(_SingleLabelTask):
    task_type = "classification"

    def _texts(self, examples: Sequence[LabeledText]) -> tuple[list[str], None]:
        return [example.text for example in examples], None


class RelationTask(ClassificationTask):
    """Entity mentions are already masked by placeholders; by default each placeholder is one token."""

    task_type = "re"

    def special_tokens(self, examples: Sequence[LabeledText]) -> list[str]:
        if not self.options.placeholders_as_tokens:
            return []
        return find_placeholders(example.text for example in examples)

    def featurize(
        self, examples: Sequence[LabeledText], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> FeatureSet:
        split = [p for p in self.special_tokens(examples) if not is_single_token(tokenizer, p)]
        if split:
            raise ConfigError(
                f"the tokenizer splits the entity placeholders {split}; call "
                "biotune.tasks.add_placeholder_tokens(tokenizer, placeholders) and resize the model's "
                "embeddings before featurizing, or set placeholders_as_tokens=False"
            )
        return super().featurize(examples, tokenizer, max_length)


class QuestionAnsweringTask(_SingleLabelTask):
    """(question, context) pairs; an over-long context is cut, the question is kept whole when it fits."""

    task_type = "qa"

    def _is_pair(self) -> bool:
        return True

    def _texts(self, examples: Sequence[Question]) -> tuple[list[str], list[str]]:
        return [example.question for example in examples], [example.context for example in examples]

    def _encode(
        self, tokenizer: PreTrainedTokenizerBase, first: list[str], second: list[str] | None, max_length: int
    ) -> Encoded:
        assert second is not None
        # "only_second" fails outright when the question alone fills the window: cut both sides there.
        room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
        question_lengths = [len(ids) for ids in tokenizer(first, add_special_tokens=False)["input_ids"]]
        groups = {
            strategy: [i for i, length in enumerate(question_lengths) if (length >= room) == too_long]
            for strategy, too_long in (("only_second", False), ("longest_first", True))
        }
        inputs: list[dict[str, list[int]]] = [{} for _ in first]
        truncated = [False] * len(first)
        for strategy, rows in groups.items():
            if not rows:
                continue
            encoding = tokenizer(
                [first[i] for i in rows],
                [second[i] for i in rows],
                truncation=strategy,
                max_length=max_length,
            )
            for i, model_inputs, cut in zip(rows, *_encoded(encoding), strict=True):
                inputs[i], truncated[i] = model_inputs, cut
        return inputs, truncated


class SimilarityTask(_OneFeaturePerExample):
    """Sentence pairs scored on the 0-4 scale; one regression output, MSE in the engine."""

    task_type = "similarity"
    head: HeadKind = "regression"

    @property
    def num_labels(self) -> int:
        return 1

    def _is_pair(self) -> bool:
        return True

    def _texts(self, examples: Sequence[ScoredPair]) -> tuple[list[str], list[str]]:
        return [example.text_a for example in examples], [example.text_b for example in examples]

    def _encode(
        self, tokenizer: PreTrainedTokenizerBase, first: list[str], second: list[str] | None, max_length: int
    ) -> Encoded:
        if self.options.pair_encoding == "siamese":
            assert second is not None
            inputs_a, cut_a = _encoded(tokenizer(first, truncation=True, max_length=max_length))
            inputs_b, cut_b = _encoded(tokenizer(second, truncation=True, max_length=max_length))
            inputs = [
                {**a, **{f"{key}_b": value for key, value in b.items()}}
                for a, b in zip(inputs_a, inputs_b, strict=True)
            ]
            return inputs, [x or y for x, y in zip(cut_a, cut_b, strict=True)]
        return _encoded(tokenizer(first, second, truncation="longest_first", max_length=max_length))

    def featurize(
        self, examples: Sequence[ScoredPair], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> FeatureSet:
        features = super().featurize(examples, tokenizer, max_length)
        if self.options.pair_encoding == "siamese":  # both sentences are computed: cost is their sum
            features.lengths = [len(f["input_ids"]) + len(f["input_ids_b"]) for f in features.features]
        return features

    def _target(self, example: ScoredPair) -> float:
        return float(example.score)

    def gold(self, examples: Sequence[ScoredPair]) -> list[float]:
        return [float(example.score) for example in examples]

    def decode(
        self, examples: Sequence[ScoredPair], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[float]:
        return [float(value) for value in self._rows(examples, features, outputs)[:, 0]]

    def probabilities(
        self, examples: Sequence[ScoredPair], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[None]:
        self._rows(examples, features, outputs)
        return [None] * len(examples)


class MultilabelTask(_OneFeaturePerExample):
    """Whole abstracts, one independent sigmoid per label; predictions are sets of label indices."""

    task_type = "multilabel"
    head: HeadKind = "multilabel"

    def _texts(self, examples: Sequence[LabeledDocument]) -> tuple[list[str], None]:
        return [example.text for example in examples], None

    def _target(self, example: LabeledDocument) -> list[float]:
        unknown = sorted(k for k in example.labels if not 0 <= k < self.num_labels)
        if unknown:
            raise DataError(
                example.source,
                None,
                f"document {example.id!r} has label indices {unknown}; the task has {self.num_labels} labels",
                "check the file is for this dataset, or give the task the full label list",
            )
        return [1.0 if k in example.labels else 0.0 for k in range(self.num_labels)]

    def gold(self, examples: Sequence[LabeledDocument]) -> list[frozenset[int]]:
        return [frozenset(example.labels) for example in examples]

    def decode(
        self, examples: Sequence[LabeledDocument], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[frozenset[int]]:
        # A positive logit is a sigmoid probability above 0.5.
        rows = self._rows(examples, features, outputs)
        return [frozenset(int(k) for k in np.flatnonzero(row > 0)) for row in rows]

    def probabilities(
        self, examples: Sequence[LabeledDocument], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[dict[str, float]]:
        probs = expit(self._rows(examples, features, outputs))
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs]


def _encoded(encoding: BatchEncoding) -> Encoded:
    """Per row: the model inputs, and whether the tokenizer had to cut the text to fit."""
    keys = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in encoding]
    inputs = [{key: encoding[key][i] for key in keys} for i in range(len(encoding["input_ids"]))]
    return inputs, [bool(row.overflowing) for row in encoding.encodings]
