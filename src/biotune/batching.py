"""Batches for training and evaluation: length-grouped, dynamically padded.

Padding is wasted compute on a CPU: training batches are drawn from length-sorted mega-batches (random
within the seed's generator, so order is reproducible), evaluation runs in length order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from biotune.tasks.base import IGNORE_INDEX, HeadKind

MEGABATCH_FACTOR = 50


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """Shuffle, cut into mega-batches of 50 batches, sort each by length, split, shuffle the batch order."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    mega = batch_size * MEGABATCH_FACTOR
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    permutation = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in permutation]


def sorted_batches(lengths: Sequence[int], max_tokens: int, max_batch: int = 256) -> list[list[int]]:
    """Evaluation: longest first, each batch at most `max_tokens` padded positions."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * width > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def collate(features: Sequence[dict[str, Any]], pad_token_id: int, head: HeadKind) -> dict[str, torch.Tensor]:
    """Pad to the longest member; token labels padded with the shared ignore index.

    Siamese pair features carry a second sequence under `input_ids_b` (and `token_type_ids_b`), padded
    on its own.
    """
    batch: dict[str, torch.Tensor] = {}
    for suffix in ("", "_b"):
        if f"input_ids{suffix}" in features[0]:
            batch.update(_pad_sequences(features, suffix, pad_token_id))
    if "labels" in features[0]:
        batch["labels"] = _collate_labels([f["labels"] for f in features], batch["input_ids"].shape[1], head)
    return batch


def _pad_sequences(
    features: Sequence[dict[str, Any]], suffix: str, pad_token_id: int
) -> dict[str, torch.Tensor]:
    ids_key, types_key = f"input_ids{suffix}", f"token_type_ids{suffix}"
    width = max(len(f[ids_key]) for f in features)
    size = len(features)
    input_ids = torch.full((size, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((size, width), dtype=torch.long)
    token_type_ids = torch.zeros((size, width), dtype=torch.long) if types_key in features[0] else None
    for row, feature in enumerate(features):
        n = len(feature[ids_key])
        input_ids[row, :n] = torch.tensor(feature[ids_key])
        attention_mask[row, :n] = 1
        if token_type_ids is not None:
            token_type_ids[row, :n] = torch.tensor(feature[types_key])
    padded = {ids_key: input_ids, f"attention_mask{suffix}": attention_mask}
    if token_type_ids is not None:
        padded[types_key] = token_type_ids
    return padded


def _collate_labels(labels: list[Any], width: int, head: HeadKind) -> torch.Tensor:
    if head == "token":
        padded = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(labels):
            padded[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return padded
    if head in ("regression", "multilabel"):
        return torch.tensor(labels, dtype=torch.float)
    return torch.tensor(labels, dtype=torch.long)


def iterate(
    features: Sequence[dict[str, Any]], batches: list[list[int]], pad_token_id: int, head: HeadKind
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    for indices in batches:
        yield indices, collate([features[i] for i in indices], pad_token_id, head)
