"""Token tasks (NER, PICO): one label per word, predicted on the word's first sub-token.

Featurization loses nothing: a sentence longer than the max length is split into windows of whole words
(see windows.py) and the predictions merged back, and a word the tokenizer reduces to zero sub-tokens
(control or odd unicode characters) is fed as the unknown token, so every word of every sentence gets
exactly one prediction. Later sub-tokens, specials and context-only words carry IGNORE_INDEX.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax
from seqeval.metrics.sequence_labeling import get_entities
from transformers import PreTrainedTokenizerBase

from biotune import metrics
from biotune.data import readers
from biotune.data.examples import TaggedSentence
from biotune.data.readers import ReadOptions
from biotune.errors import ConfigError, DataError
from biotune.tasks.base import (
    IGNORE_INDEX,
    FeatureSet,
    HeadKind,
    PredictInput,
    Task,
    check_examples,
    check_outputs,
    require_fast_tokenizer,
)
from biotune.tasks.windows import assign_words, plan_windows
from biotune.textsplit import Word, split_sentences, split_words

# The label of an entity span whose tags carry no type (BLURB's B/I/O files), unless the dataset names one.
DEFAULT_ENTITY_TYPE = "ENTITY"
OUTSIDE = "O"


@dataclass
class _WindowJob:
    """A window that needs its own tokenizer call: which sentence, which words, which ones it predicts."""

    example_index: int
    start: int
    words: list[str]
    owned: list[bool]  # per word of the window: predicted from this window


class TokenTask(Task):
    head: HeadKind = "token"

    @classmethod
    def read(
        cls, path: Path | str, labels: Collection[str] | None = None, options: ReadOptions | None = None
    ) -> list[Any]:
        if options is None:
            return list(readers.read_tagged_tsv(path, labels))
        formats = ("tsv", "conll", "jsonl", "csv")
        chosen = readers.resolve_format(path, options, readers.TAGGED_COLUMNS, formats, cls.task_type)
        if chosen == "tsv":
            return list(readers.read_tagged_tsv(path, labels))
        if chosen == "conll":
            return list(readers.read_conll(path, labels))
        return list(readers.read_tagged_records(path, labels, chosen, options.tag_names))

    @classmethod
    def own_labels(cls, train_path: Path, train: Sequence[Any]) -> tuple[str, ...]:
        return tuple(sorted({tag for sentence in train for tag in sentence.tags}))

    @classmethod
    def label_names(cls, example: Any, names: Sequence[str] = ()) -> list[str]:
        return list(example.tags)

    @classmethod
    def label_line(cls, example: Any, position: int) -> int:
        """A word a line from the sentence's first (TSV, CoNLL); JSON Lines and CSV: the sentence's line."""
        line = super().label_line(example, position)
        return line + position if example.word_lines else line

    def trivial_predictions(self, train: Sequence[Any], examples: Sequence[Any]) -> list[list[str]]:
        """Every word outside any entity."""
        return [
            [OUTSIDE] * len(sentence.words) for sentence in examples if isinstance(sentence, TaggedSentence)
        ]

    @classmethod
    def hub_labels(cls, labels: Sequence[str], entity_type: str) -> list[str]:
        """Untyped BLURB tags (`B`, `I`) typed with the dataset's entity: the pipeline's entity groups
        then read `DISEASE`, not `B`/`LABEL_1` (typed tags such as PICO's `I-PAR` stay)."""
        return [f"{label}-{entity_type}" if label in ("B", "I") else label for label in labels]

    def predict_input(self, name: str, texts: tuple[str, ...]) -> PredictInput:
        """Raw text cut into words and sentences (biotune.textsplit), one sentence per example."""
        text = texts[0]
        words = split_words(text)
        sentences = split_sentences(text, words)
        examples = [
            TaggedSentence(
                f"{name}#{k}",
                tuple(w.text for w in words[first:end]),
                (self.labels[0],) * (end - first),
                name,
            )
            for k, (first, end) in enumerate(sentences)
        ]
        return PredictInput(examples, text, words, sentences)

    def example_scores(
        self, examples: Sequence[Any], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Per sentence, a [words, labels] array of tag probabilities."""
        return [
            np.array([[probs[label] for label in self.labels] for probs in rows])
            for rows in self.probabilities(examples, features, outputs)
        ]

    def prediction_row(
        self, prepared: PredictInput, scores: np.ndarray, threshold: float, entity_type: str
    ) -> dict[str, Any]:
        best = scores.argmax(axis=-1)
        entities = []
        for first, end in prepared.sentences:
            tags = [self.labels[k] for k in best[first:end]]
            confidences = scores[np.arange(first, end), best[first:end]]
            entities += entity_spans(prepared.text, prepared.words[first:end], tags, confidences, entity_type)
        return {"text": prepared.text, "entities": entities}

    def featurize(
        self, examples: Sequence[TaggedSentence], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> FeatureSet:
        require_fast_tokenizer(tokenizer)
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        if budget < 1:
            raise ConfigError(f"max_length {max_length} leaves no room for words next to the special tokens")
        overlap = int(budget * self.options.window_overlap)
        label_ids = [self._tag_ids(example) for example in examples]

        # Full-length pass: most sentences fit and are done here; the rest become window jobs.
        whole = tokenizer(
            [list(ex.words) for ex in examples],
            is_split_into_words=True,
            add_special_tokens=True,
            truncation=False,
            verbose=False,
        )
        has_type_ids = "token_type_ids" in whole
        per_example: list[list[tuple[dict[str, Any], list[int]]]] = [[] for _ in examples]
        jobs: list[_WindowJob] = []
        n_split = n_truncated = 0
        for i, example in enumerate(examples):
            word_ids = whole.word_ids(i)
            counts = [0] * len(example.words)
            for word in word_ids:
                if word is not None:
                    counts[word] += 1
            if len(word_ids) <= max_length and all(counts):
                feature, index = _feature(whole, i, word_ids, 0, None, label_ids[i], has_type_ids)
                per_example[i].append((feature, index))
                continue
            costs = [min(max(count, 1), budget) for count in counts]
            n_truncated += any(count > budget for count in counts)
            windows = plan_windows(costs, budget, overlap)
            n_split += len(windows) > 1
            owners = assign_words(costs, windows)
            if tokenizer.unk_token is None and not all(counts):
                raise ConfigError(f"the tokenizer drops words of {example.id!r} and has no unknown token")
            words = [
                word if n else tokenizer.unk_token for word, n in zip(example.words, counts, strict=True)
            ]
            for w, (start, end) in enumerate(windows):
                owned = [owners[word] == w for word in range(start, end)]
                jobs.append(_WindowJob(i, start, words[start:end], owned))

        if jobs:
            parts = tokenizer(
                [job.words for job in jobs],
                is_split_into_words=True,
                add_special_tokens=True,
                truncation=True,  # only ever cuts the tail of a single word longer than a whole window
                max_length=max_length,
            )
            for j, job in enumerate(jobs):
                feature, index = _feature(
                    parts,
                    j,
                    parts.word_ids(j),
                    job.start,
                    job.owned,
                    label_ids[job.example_index],
                    has_type_ids,
                )
                per_example[job.example_index].append((feature, index))

        features: list[dict[str, Any]] = []
        word_index: list[list[int]] = []
        for i, windows_of_example in enumerate(per_example):
            predicted = sorted(w for _, index in windows_of_example for w in index if w >= 0)
            if predicted != list(range(len(examples[i].words))):
                raise RuntimeError(f"featurization lost or repeated words of example {examples[i].id!r}")
            for feature, index in windows_of_example:
                feature["example_index"] = i
                features.append(feature)
                word_index.append(index)
        return FeatureSet(
            features=features,
            word_index=word_index,
            n_examples=len(examples),
            n_truncated=n_truncated,
            n_split=n_split,
            lengths=[len(f["input_ids"]) for f in features],
        )

    def _tag_ids(self, example: TaggedSentence) -> list[int]:
        if len(example.tags) != len(example.words):
            raise DataError(
                example.source,
                None,
                f"sentence {example.id!r} has {len(example.words)} words but {len(example.tags)} tags",
                "give every word exactly one tag",
            )
        return [self.label_id(tag, example) for tag in example.tags]

    def gold(self, examples: Sequence[TaggedSentence]) -> list[list[str]]:
        return [list(example.tags) for example in examples]

    def decode(
        self, examples: Sequence[TaggedSentence], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[list[str]]:
        return [
            [self.labels[k] for k in rows.argmax(axis=-1)]
            for rows in self._word_logits(examples, features, outputs)
        ]

    def probabilities(
        self, examples: Sequence[TaggedSentence], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[list[dict[str, float]]]:
        result = []
        for rows in self._word_logits(examples, features, outputs):
            probs = softmax(rows, axis=-1) if len(rows) else rows
            result.append([dict(zip(self.labels, map(float, row), strict=True)) for row in probs])
        return result

    def _word_logits(
        self, examples: Sequence[TaggedSentence], features: FeatureSet, outputs: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Per example, the logits of each word (rows in word order), gathered from its windows."""
        check_examples(examples, features)
        check_outputs(features, outputs)
        if features.word_index is None:
            raise ValueError("token task features need word_index")
        rows = [np.full((len(ex.words), self.num_labels), np.nan, dtype=np.float64) for ex in examples]
        for feature, index, output in zip(features.features, features.word_index, outputs, strict=True):
            output = np.asarray(output)
            if output.ndim != 2 or output.shape[0] < len(index) or output.shape[1] != self.num_labels:
                raise ValueError(
                    f"token output of shape {output.shape} for a feature of {len(index)} positions "
                    f"and {self.num_labels} labels"
                )
            positions = np.asarray(index)
            at = positions >= 0
            rows[feature["example_index"]][positions[at]] = output[: len(index)][at]
        for example, example_rows in zip(examples, rows, strict=True):
            if np.isnan(example_rows).any():
                raise ValueError(f"no model output for some words of example {example.id!r}")
        return rows


class NerTask(TokenTask):
    task_type = "ner"
    metric_name = "entity-level F1"
    unit = "mentions"
    own_max_length = 128
    description = "named entity recognition (one B/I/O tag per word)"
    card_note = (
        "Raw text of any length: biotune cuts it into words and sentences the way the BLURB files "
        "were tokenized, windows long sentences, and returns entity spans with character offsets."
    )

    @classmethod
    def count_units(cls, examples: Sequence[Any]) -> int:
        """Mentions: the entities seqeval finds (an I after O or at a sentence start opens one too); on
        the staged files this equals SOURCES.md's count of B tags."""
        return len(get_entities([list(sentence.tags) for sentence in examples]))

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.ner_scores(gold, predicted)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> str:
        return "Mutations in the BRCA1 gene cause hereditary breast cancer ."


class PicoTask(TokenTask):
    task_type = "pico"
    metric_name = "macro word-level F1 over P/I/O"
    unit = "labelled tokens"
    own_max_length = 256
    description = "PICO extraction (one participant/intervention/outcome tag per word)"
    card_note = (
        "Raw text of any length: biotune cuts it into words and sentences and returns P/I/O spans "
        "with character offsets."
    )

    @classmethod
    def count_units(cls, examples: Sequence[Any]) -> int:
        """Labelled tokens: the words not tagged O."""
        return sum(tag != OUTSIDE for sentence in examples for tag in sentence.tags)

    @classmethod
    def score(
        cls, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
    ) -> dict[str, Any]:
        return metrics.pico_scores(gold, predicted)

    @classmethod
    def card_example(cls, placeholders: Sequence[str]) -> str:
        return "Forty patients with asthma received budesonide or placebo for six weeks ."


def entity_spans(
    text: str,
    words: Sequence[Word],
    tags: Sequence[str],
    confidences: Sequence[float],
    untyped_label: str = DEFAULT_ENTITY_TYPE,
) -> list[dict[str, Any]]:
    """Spans of one sentence's word tags (seqeval semantics), with character offsets into `text`."""
    spans = []
    for entity_type, first, last in get_entities(list(tags)):
        start, end = words[first].start, words[last].end
        spans.append(
            {
                "start": start,
                "end": end,
                "text": text[start:end],
                "label": untyped_label if entity_type == "_" else entity_type,
                "score": float(np.mean(confidences[first : last + 1])),
            }
        )
    return spans


def _feature(
    encoding: Any,
    row: int,
    word_ids: list[int | None],
    start: int,
    owned: list[bool] | None,
    labels: list[int],
    has_type_ids: bool,
) -> tuple[dict[str, Any], list[int]]:
    """One feature: the word at each first sub-token (shifted by the window start), labelled if owned."""
    index: list[int] = []
    previous: int | None = None
    for word in word_ids:
        first = word is not None and word != previous
        index.append(start + word if first and (owned is None or owned[word]) else -1)
        previous = word
    feature: dict[str, Any] = {
        "input_ids": encoding["input_ids"][row],
        "attention_mask": encoding["attention_mask"][row],
        "labels": [labels[w] if w >= 0 else IGNORE_INDEX for w in index],
    }
    if has_type_ids:
        feature["token_type_ids"] = encoding["token_type_ids"][row]
    return feature, index
