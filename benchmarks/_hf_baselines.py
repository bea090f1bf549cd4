"""Pieces of the plain Hugging Face baselines that more than one benchmark uses.

Written the way transformers' examples write them: run_ner.py's tokenize_and_align_labels (the label on a
word's first sub-token, IGNORE_INDEX elsewhere, a sentence cut at the max length), run_glue.py's
tokenization of one text or a text pair, and the way back from the model's outputs to biotune's own
prediction types, so that both systems are scored by the same `biotune.metrics.compute`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import Trainer

from biotune.data.examples import TaggedSentence
from biotune.tasks.base import IGNORE_INDEX


class PhaseCountingCollator:
    """A Hugging Face collator (run_ner.py's or run_glue.py's), counting real tokens and padded positions
    per phase, which `TimedTrainer` sets.

    Also records the order in which evaluation rows arrive (an `index` field, dropped before collating;
    group_by_length reorders evaluation batches), so the predictions can be mapped back to their examples.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.phase = "train"
        self.tokens = {"train": 0, "eval": 0}
        self.positions = {"train": 0, "eval": 0}
        self.eval_order: list[int] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        inputs = [{k: v for k, v in f.items() if k != "index"} for f in features]
        batch = self.inner(inputs)
        self.tokens[self.phase] += sum(len(f["input_ids"]) for f in inputs)
        self.positions[self.phase] += batch["input_ids"].numel()
        if self.phase == "eval":
            self.eval_order.extend(f["index"] for f in features if "index" in f)
        return batch


class TimedTrainer(Trainer):
    """Times every evaluation, keeps its metrics, and tells the collator which phase its batches are in."""

    def __init__(self, *args: Any, counting: PhaseCountingCollator, **kwargs: Any) -> None:
        super().__init__(*args, data_collator=counting, **kwargs)
        self.counting = counting
        self.eval_seconds = 0.0
        self.evaluations: list[dict[str, float]] = []

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        self.counting.phase, self.counting.eval_order = "eval", []
        started = time.perf_counter()
        try:
            result = super().evaluate(*args, **kwargs)
        finally:
            self.eval_seconds += time.perf_counter() - started
            self.counting.phase = "train"
        self.evaluations.append(result)
        return result


@dataclass
class Encoded:
    """run_ner.py's tokenize_and_align_labels, plus which word each labelled position stands for."""

    items: list[dict[str, Any]]
    words_of_labels: list[list[int]]


def encode_like_run_ner(
    sentences: Sequence[TaggedSentence], tokenizer: Any, label_ids: dict[str, int], max_length: int
) -> Encoded:
    encoded = tokenizer(
        [list(s.words) for s in sentences], truncation=True, max_length=max_length, is_split_into_words=True
    )
    items: list[dict[str, Any]] = []
    words_of_labels: list[list[int]] = []
    for i, sentence in enumerate(sentences):
        labels: list[int] = []
        words: list[int] = []
        previous = None
        for word in encoded.word_ids(batch_index=i):
            if word is not None and word != previous:
                labels.append(label_ids[sentence.tags[word]])
                words.append(word)
            else:
                labels.append(IGNORE_INDEX)
            previous = word
        item = {key: encoded[key][i] for key in encoded}
        item["labels"] = labels
        item["index"] = i  # read (and removed) by the benchmarks' collators; never reaches the model
        items.append(item)
        words_of_labels.append(words)
    return Encoded(items, words_of_labels)


def word_tags(
    sentences: Sequence[TaggedSentence],
    labels: Sequence[str],
    encoded: Encoded,
    logits: Any,
    label_rows: Any,
    order: Iterable[int] | None = None,
) -> list[list[str]]:
    """One predicted tag per word of every sentence: each labelled position's argmax goes to its word;
    words cut off by the max length (or reduced to no sub-token) are predicted O.

    `order` names the sentence of each output row (an evaluation that reorders rows); default: row i is
    sentence i.
    """
    argmax = np.asarray(logits).argmax(-1)
    label_rows = np.asarray(label_rows)
    predicted = [["O"] * len(s.words) for s in sentences]
    for row, sentence in enumerate(range(len(sentences)) if order is None else order):
        positions = np.flatnonzero(label_rows[row] != IGNORE_INDEX)
        for position, word in zip(positions, encoded.words_of_labels[sentence], strict=True):
            predicted[sentence][word] = labels[argmax[row, position]]
    return predicted


def encode_like_run_glue(
    tokenizer: Any,
    first: Sequence[str],
    second: Sequence[str] | None,
    targets: Sequence[Any],
    max_length: int,
    truncation: bool | str = True,
) -> list[dict[str, Any]]:
    """run_glue.py's preprocess_function: one text or a text pair, cut at the max length, no padding (the
    collator pads each batch), the target as `labels`."""
    pairs = list(second) if second is not None else None
    encoded = tokenizer(list(first), pairs, truncation=truncation, max_length=max_length)
    return [
        {**{key: encoded[key][i] for key in encoded}, "labels": target} for i, target in enumerate(targets)
    ]


def first_output(predictions: Any) -> np.ndarray:
    """The logits of a Trainer prediction (a tuple when the model returns more than one output)."""
    return np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions)
