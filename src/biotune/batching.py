"""Batches for training and evaluation: length-bucketed, dynamically padded.

Padding is wasted compute on a CPU. Training batches are filled to a token budget from length-sorted
mega-batches (random within the seed's generator, so the order is reproducible); evaluation batches are the
cut of the length-sorted examples that computes the fewest positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from biotune.tasks.heads import HeadKind, get_head

MEGABATCH_FACTOR = 50
# What one more evaluation batch costs, in positions of forward compute. Measured for MiniLM-L6 on a
# 2-core CPU: about 32 on an idle machine, several hundred when other processes compete for the cores
# (every parallel op then waits for a descheduled thread). 128 gives up about 1% when idle to save about
# 10% on a shared machine: 16 batches and 5% padding on NCBI-disease dev, instead of 31 and 2%.
EVAL_BATCH_COST = 128


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


def token_budget_batches(
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator,
    megabatch_factor: int = MEGABATCH_FACTOR,
) -> list[list[int]]:
    """Training: batches of about `batch_size` x the mean length in padded positions, in random order.

    Shuffle, cut into near-equal mega-batches of about `megabatch_factor` batches, sort each longest first,
    and fill a batch until one more example would overshoot the budget by more than stopping undershoots
    it. Long examples come a few to a batch and short ones many, so almost no position is padding, while
    a batch holds about `batch_size` examples on average: the learning rate, warmup and epoch keep their
    meaning.
    """
    if not lengths:
        return []
    order = torch.randperm(len(lengths), generator=generator).tolist()
    budget = batch_size * sum(lengths) / len(lengths)
    parts = max(1, round(len(order) / (batch_size * megabatch_factor)))
    batches: list[list[int]] = []
    for chunk in _split_evenly(order, parts):
        chunk.sort(key=lambda i: -lengths[i])
        current: list[int] = []
        for index in chunk:
            # longest first: a batch is as wide as its first example
            if current and (len(current) + 0.5) * lengths[current[0]] > budget:
                batches.append(current)
                current = []
            current.append(index)
        batches.append(current)
    permutation = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in permutation]


def _split_evenly(items: list[int], parts: int) -> list[list[int]]:
    size, extra = divmod(len(items), parts)
    bounds = [k * size + min(k, extra) for k in range(parts + 1)]
    return [items[bounds[k] : bounds[k + 1]] for k in range(parts)]


def sorted_batches(
    lengths: Sequence[int], max_tokens: int, max_batch: int = 256, batch_cost: float = EVAL_BATCH_COST
) -> list[list[int]]:
    """Evaluation: the examples longest first, cut where that computes the fewest positions.

    Every batch holds at most `max_batch` examples and `max_tokens` padded positions (an example longer
    than that is a batch of its own). Among all such cuts of the sorted order this is the one with the
    fewest padded positions plus `batch_cost` per batch (dynamic programming over the cut points).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    widths = np.array([lengths[i] for i in order], dtype=np.float64)
    cost = np.zeros(len(order) + 1)
    start = np.zeros(len(order) + 1, dtype=np.int64)
    for end in range(1, len(order) + 1):
        first = max(0, end - max_batch)
        # a batch order[i:end] is as wide as order[i], its longest example
        padded = (end - np.arange(first, end)) * widths[first:end]
        candidates = cost[first:end] + padded + batch_cost
        candidates[padded > max_tokens] = np.inf
        candidates[-1] = cost[end - 1] + widths[end - 1] + batch_cost
        best = int(np.argmin(candidates))
        cost[end], start[end] = candidates[best], first + best
    batches: list[list[int]] = []
    end = len(order)
    while end > 0:
        batches.append(order[start[end] : end])
        end = int(start[end])
    return batches[::-1]


def padded_size(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(real tokens, computed positions) of a list of batches: each batch is padded to its longest member."""
    real = positions = 0
    for batch in batches:
        widths = [lengths[i] for i in batch]
        real += sum(widths)
        positions += len(widths) * max(widths)
    return real, positions


def collate(features: Sequence[dict[str, Any]], pad_token_id: int, head: HeadKind) -> dict[str, torch.Tensor]:
    """Pad to the longest member; the labels as the head batches them (token labels padded with the
    shared ignore index).

    Siamese pair features carry a second sequence under `input_ids_b` (and `token_type_ids_b`), padded
    on its own.
    """
    batch: dict[str, torch.Tensor] = {}
    for suffix in ("", "_b"):
        if f"input_ids{suffix}" in features[0]:
            batch.update(_pad_sequences(features, suffix, pad_token_id))
    if "labels" in features[0]:
        labels = [f["labels"] for f in features]
        batch["labels"] = get_head(head).collate_labels(labels, batch["input_ids"].shape[1])
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


def iterate(
    features: Sequence[dict[str, Any]], batches: list[list[int]], pad_token_id: int, head: HeadKind
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    for indices in batches:
        yield indices, collate([features[i] for i in indices], pad_token_id, head)
