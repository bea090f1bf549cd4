"""Inference: a model's raw outputs on a feature set, and an evaluation (decode + score) of a split.

Shared by the training engine (dev selection, test), `evaluate` and `predict`, so none of those imports the
training loop. Batches are sorted by length and cut to the device recipe's position budget; the forward
pass runs under the recipe's autocast, and outputs come back as fp32 numpy arrays.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from biotune import metrics
from biotune.batching import iterate, padded_size, sorted_batches
from biotune.device import DeviceRecipe, recipe_for
from biotune.errors import TrainingDiverged
from biotune.resources import batch_dimensions, out_of_memory_guard
from biotune.tasks import FeatureSet, Task
from biotune.tasks.base import HeadKind
from biotune.tasks.heads import get_head


@dataclass
class Throughput:
    """Where a seed's compute went: seconds, real (non-padding) tokens and computed (padded) positions.

    Training counts the optimizer steps only; evaluation counts every dev/test pass (forward, decoding and
    scoring). Tokens follow the feature set's lengths.
    """

    train_seconds: float = 0.0
    train_tokens: int = 0
    train_positions: int = 0
    eval_seconds: float = 0.0
    eval_tokens: int = 0
    eval_positions: int = 0


@dataclass
class SplitData:
    examples: Sequence[Any]
    features: FeatureSet


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    predictions: list[Any]


def as_recipe(where: DeviceRecipe | torch.device | str) -> DeviceRecipe:
    """A recipe as given, or the fp32 recipe of a device (callers that only name a device)."""
    if isinstance(where, DeviceRecipe):
        return where
    return recipe_for(str(where), "fp32")


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


@torch.inference_mode()
def predict_outputs(
    model: nn.Module,
    features: FeatureSet,
    head: HeadKind,
    pad_token_id: int,
    where: DeviceRecipe | torch.device | str,
    meter: Throughput | None = None,
) -> list[np.ndarray]:
    """Raw outputs per feature, in feature order; token heads trimmed to each feature's real length."""
    recipe = as_recipe(where)
    pooled = get_head(head).pooled  # one row per example; token heads: one per position
    model.eval()
    outputs: list[np.ndarray] = [np.empty(0)] * len(features.features)
    batches = sorted_batches(features.lengths, recipe.eval_tokens_per_batch)
    if meter is not None:
        tokens, positions = padded_size(features.lengths, batches)
        meter.eval_tokens += tokens
        meter.eval_positions += positions
    for indices, batch in iterate(features.features, batches, pad_token_id, head):
        with out_of_memory_guard(*batch_dimensions(batch)), recipe.autocast():
            logits = model(**model_inputs(batch, recipe.device)).logits
        logits = logits.float().cpu().numpy()
        if not np.isfinite(logits).all():
            raise TrainingDiverged("the model's outputs became non-finite (nan/inf)")
        for row, index in enumerate(indices):
            outputs[index] = logits[row] if pooled else logits[row, : features.lengths[index]]
    return outputs


def evaluate(
    model: nn.Module,
    task: Task,
    split: SplitData,
    spec: Any,
    pad_token_id: int,
    where: DeviceRecipe | torch.device | str,
    meter: Throughput | None = None,
) -> Evaluation:
    started = time.perf_counter()
    outputs = predict_outputs(model, split.features, task.head, pad_token_id, where, meter)
    predictions = task.decode(split.examples, split.features, outputs)
    scores = metrics.compute(spec, task.gold(split.examples), predictions)
    if meter is not None:
        meter.eval_seconds += time.perf_counter() - started
    return Evaluation(scores, predictions)
