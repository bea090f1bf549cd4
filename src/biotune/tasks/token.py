"""Token tasks (NER, PICO): one label per word, predicted on the word's first sub-token.

Featurization loses nothing: a sentence longer than the max length is split into windows of whole words
(see windows.py) and the predictions merged back, and a word the tokenizer reduces to zero sub-tokens
(control or odd unicode characters) is fed as the unknown token, so every word of every sentence gets
exactly one prediction. Later sub-tokens, specials and context-only words carry IGNORE_INDEX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import softmax
from transformers import PreTrainedTokenizerBase

from biotune.data.examples import TaggedSentence
from biotune.errors import ConfigError, DataError
from biotune.tasks.base import (
    IGNORE_INDEX,
    FeatureSet,
    HeadKind,
    Task,
    check_examples,
    check_outputs,
    require_fast_tokenizer,
)
from biotune.tasks.windows import assign_words, plan_windows


@dataclass
class _WindowJob:
    """A window that needs its own tokenizer call: which sentence, which words, which ones it predicts."""

    example_index: int
    start: int
    words: list[str]
    owned: list[bool]  # per word of the window: predicted from this window


class TokenTask(Task):
    head: HeadKind = "token"

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


class PicoTask(TokenTask):
    task_type = "pico"


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
