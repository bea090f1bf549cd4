"""Pieces of the plain Hugging Face baselines that more than one benchmark uses.

Written the way transformers' examples write them: run_ner.py's tokenize_and_align_labels (the label on a
word's first sub-token, IGNORE_INDEX elsewhere, a sentence cut at the max length), run_glue.py's
tokenization of one text or a text pair, and the way back from the model's outputs to biotune's own
prediction types, so that both systems are scored by the same `biotune.metrics.compute`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from biotune.data.examples import TaggedSentence
from biotune.tasks.base import IGNORE_INDEX


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
