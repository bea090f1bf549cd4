"""Sequence-level tasks: one feature per example, one prediction per example.

- RE (ChemProt, DDI, GAD) and single-label classification: one text, classified from the pooled output;
  RE keeps its entity placeholders as single tokens by default (see placeholders.py).
- QA (PubMedQA, BioASQ): the (question, context) pair; only the context side is ever cut.
- Similarity (BIOSSES): the (sentence, sentence) pair, one regression output.
- Multi-label (HoC): the whole abstract (joined sentences), one sigmoid output per label.

Truncated examples are counted from the fast tokenizer's own record of what it cut (`overflowing`).
"""

from __future__ import annotations

import statistics
from abc import abstractmethod
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import expit, softmax
from transformers import BatchEncoding, PreTrainedTokenizerBase

from biotune import metrics
from biotune.data import readers
from biotune.data.examples import LabeledDocument, LabeledText, Question, ScoredPair
from biotune.data.readers import ReadOptions
from biotune.data.registry import resolve_negative_label
from biotune.errors import ConfigError, DataError
from biotune.tasks.base import (
    FeatureSet,
    HeadKind,
    PredictInput,
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
    # the output row's key for the predicted label
    answer_key: ClassVar[str] = "label"

    def _target(self, example: Any) -> int:
        return self.label_id(example.label, example)

    @classmethod
    def own_labels(cls, train_path: Path, train: Sequence[Any]) -> tuple[str, ...]:
        return tuple(sorted({example.label for example in train}))

    @classmethod
    def label_names(cls, example: Any, names: Sequence[str] = ()) -> list[str]:
        return [example.label]

    def trivial_predictions(self, train: Sequence[Any], examples: Sequence[Any]) -> list[str]:
        majority_label = Counter(self.gold(train)).most_common(1)[0][0]
        return [majority_label] * len(examples)

    def prediction_row(
        self, prepared: PredictInput, scores: np.ndarray, threshold: float, entity_type: str
    ) -> dict[str, Any]:
        return {
            self.answer_key: self.labels[int(scores.argmax())],
            "probabilities": dict(zip(self.labels, map(float, scores), strict=True)),
        }

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
    metric_name = "accuracy and macro F1"
    unit = "texts"
    own_max_length = 256
    description = "text classification"

    @classmethod
    def read(
        cls, path: Path | str, labels: Collection[str] | None = None, options: ReadOptions | None = None
    ) -> list[Any]:
        if options is None:
            return list(readers.read_labeled_tsv(path, labels))
        formats = ("tsv", "jsonl", "csv")
        chosen = readers.resolve_format(path, options, readers.LABELED_COLUMNS, formats, cls.task_type)
        if chosen == "tsv":
            return list(readers.read_labeled_tsv(path, labels))
        return list(readers.read_labeled_records(path, labels, chosen))

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.classification_scores(gold, predicted)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> str:
        return "Overexpression of the gene promoted angiogenesis and invasion of tumour cells."

    def predict_input(self, name: str, texts: tuple[str, ...]) -> PredictInput:
        return PredictInput([LabeledText(name, texts[0], self.labels[0], name)])

    def _texts(self, examples: Sequence[LabeledText]) -> tuple[list[str], None]:
        return [example.text for example in examples], None


class RelationTask(ClassificationTask):
    """Entity mentions are already masked by placeholders; by default each placeholder is one token."""

    task_type = "re"
    metric_name = "micro F1 over positive classes"
    unit = "pairs"
    own_max_length = 256
    description = "relation extraction between two masked entity mentions"
    card_note = (
        "Texts with the two entities masked by placeholders, or raw text with `entity1`/`entity2` "
        'character spans (`{"start": 0, "end": 5, "type": "GENE"}`) in a JSON object.'
    )
    entity_placeholders = True

    @classmethod
    def own_negative_label(cls, labels: tuple[str, ...], negative_label: str | None) -> str:
        return resolve_negative_label(labels, negative_label)

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.relation_scores(gold, predicted, negative_label)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> str:
        singles = sorted((p for p in placeholders if "-" not in p), key=_placeholder_order)
        first, second = (singles[0], singles[-1]) if singles else ("@GENE$", "@DISEASE$")
        return f"{first} was associated with {second} in these patients."

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
    metric_name = "accuracy"
    unit = "questions"
    own_max_length = 512
    description = "yes/no question answering over a context"
    snippet_truncation = '"only_second"'
    pair_fields = ("question", "context")
    answer_key = "answer"

    @classmethod
    def read(
        cls, path: Path | str, labels: Collection[str] | None = None, options: ReadOptions | None = None
    ) -> list[Any]:
        # BLURB's two layouts, PubMedQA's JSON or BioASQ's TSV: the first choice, what `auto` falls back to
        chosen = "json" if readers.looks_like_json(path) else "tsv"
        if options is not None:
            formats = (chosen, *(f for f in ("tsv", "json", "jsonl", "csv") if f != chosen))
            chosen = readers.resolve_format(path, options, readers.QUESTION_COLUMNS, formats, cls.task_type)
        if chosen in ("jsonl", "csv"):
            return list(readers.read_question_records(path, labels, chosen))
        if chosen == "json":
            return list(readers.read_pubmedqa(path, labels))
        return list(readers.read_bioasq(path, labels))

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.qa_scores(gold, predicted)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> tuple[str, str]:
        return (
            "Does aspirin reduce the risk of stroke?",
            "In this trial, daily aspirin lowered the incidence of stroke by a quarter.",
        )

    def predict_input(self, name: str, texts: tuple[str, ...]) -> PredictInput:
        return PredictInput([Question(name, texts[0], texts[1], self.labels[0], name)])

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
    compares_sentence_pairs = True
    metric_name = "Pearson"
    unit = "pairs"
    own_max_length = 128
    labels_by_name = False
    description = "sentence similarity (regression on the 0-4 scale of the training data)"
    pair_fields = ("sentence1", "sentence2")

    def train_target_mean(self, train: Sequence[ScoredPair]) -> float | None:
        return float(sum(self.gold(train)) / len(train))

    @property
    def num_labels(self) -> int:
        return 1

    @classmethod
    def read(
        cls, path: Path | str, labels: Collection[str] | None = None, options: ReadOptions | None = None
    ) -> list[Any]:
        if options is None:
            return list(readers.read_biosses(path))
        formats = ("tsv", "jsonl", "csv")
        chosen = readers.resolve_format(path, options, readers.SCORED_COLUMNS, formats, cls.task_type)
        if chosen == "tsv":
            return list(readers.read_biosses(path))
        return list(readers.read_scored_records(path, chosen))

    @classmethod
    def score_summary(cls, examples: Sequence[Any]) -> dict[str, float]:
        scores = [example.score for example in examples if isinstance(example, ScoredPair)]
        return {"min": min(scores), "max": max(scores), "mean": statistics.fmean(scores)}

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.similarity_scores(gold, predicted)

    def trivial_predictions(self, train: Sequence[Any], examples: Sequence[Any]) -> list[float]:
        mean = float(np.mean(self.gold(train)))
        return [mean] * len(examples)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> tuple[str, str]:
        return ("The protein inhibits tumour growth.", "Tumour growth is suppressed by the protein.")

    def predict_input(self, name: str, texts: tuple[str, ...]) -> PredictInput:
        return PredictInput([ScoredPair(name, texts[0], texts[1], 0.0, name)])

    def example_scores(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """The regression output itself, as a one-element array."""
        return [np.array([score]) for score in self.decode(examples, features, outputs)]

    def prediction_row(
        self, prepared: PredictInput, scores: np.ndarray, threshold: float, entity_type: str
    ) -> dict[str, Any]:
        return {"score": float(scores[0])}

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
    metric_name = "micro F1, abstract level"
    unit = "documents"
    own_max_length = 512
    labels_by_name = False
    description = "multi-label document classification"
    uses_threshold = True

    @classmethod
    def read(
        cls, path: Path | str, labels: Collection[str] | None = None, options: ReadOptions | None = None
    ) -> list[Any]:
        if options is not None:  # only HoC's layout: run_glue.py's columns hold one label per text
            readers.resolve_format(path, options, readers.LABELED_COLUMNS, ("tsv",), cls.task_type)
        return list(readers.read_hoc(path, len(labels) if labels else None))

    @classmethod
    def own_labels(cls, train_path: Path, train: Sequence[Any]) -> tuple[str, ...]:
        """Label indices as names; their number is the training file's label columns."""
        return tuple(str(i) for i in range(readers.hoc_label_count(train_path)))

    @classmethod
    def label_names(cls, example: Any, names: Sequence[str] = ()) -> list[str]:
        """Label indices by the given names (HoC's hallmarks); an index without a name as itself."""
        return [names[i] if i < len(names) else str(i) for i in example.labels]

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.multilabel_scores(gold, predicted)

    @classmethod
    def from_json(cls, value: Any) -> frozenset[int]:
        return frozenset(value)

    def trivial_predictions(self, train: Sequence[Any], examples: Sequence[Any]) -> list[frozenset[int]]:
        gold_train = self.gold(train)
        counts = Counter(label for labels in gold_train for label in labels)
        majority = frozenset(label for label, n in counts.items() if n > len(gold_train) / 2)
        return [majority] * len(examples)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> str:
        return ClassificationTask.card_example(placeholders)

    def predict_input(self, name: str, texts: tuple[str, ...]) -> PredictInput:
        return PredictInput([LabeledDocument(name, (texts[0],), frozenset(), name)])

    def prediction_row(
        self, prepared: PredictInput, scores: np.ndarray, threshold: float, entity_type: str
    ) -> dict[str, Any]:
        return {
            "labels": [label for label, p in zip(self.labels, scores, strict=True) if p > threshold],
            "probabilities": dict(zip(self.labels, map(float, scores), strict=True)),
        }

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


def _placeholder_order(placeholder: str) -> tuple[int, str]:
    """Agents before targets in the example sentence: chemical/drug, then gene, then disease."""
    order = ("@CHEMICAL$", "@DRUG$", "@GENE$", "@DISEASE$")
    return (order.index(placeholder) if placeholder in order else len(order), placeholder)


def _encoded(encoding: BatchEncoding) -> Encoded:
    """Per row: the model inputs, and whether the tokenizer had to cut the text to fit."""
    keys = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in encoding]
    inputs = [{key: encoding[key][i] for key in keys} for i in range(len(encoding["input_ids"]))]
    return inputs, [bool(row.overflowing) for row in encoding.encodings]
