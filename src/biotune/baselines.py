"""What a fine-tuned model must beat: a trivial predictor, and for similarity a zero-shot encoder.

The trivial baseline is the failure line (a seed whose dev score is no better is counted as failed):
the majority class for single-label tasks, the majority value of each label for multi-label, a constant
(Pearson 0) for similarity, all-`O` for tagging. For similarity the untrained encoder's mean-pooled
embeddings compared by cosine are recorded too: fine-tuning that loses to doing nothing should be visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from biotune import metrics
from biotune.data.examples import ScoredPair
from biotune.tasks import Task


def trivial_predictions(task: Task, train: Sequence[Any], examples: Sequence[Any]) -> list[Any]:
    """The task type's own trivial predictor (`Task.trivial_predictions`)."""
    return task.trivial_predictions(train, examples)


def trivial_scores(task: Task, spec: Any, train: Sequence[Any], examples: Sequence[Any]) -> dict[str, Any]:
    return metrics.compute(spec, task.gold(examples), trivial_predictions(task, train, examples))


@torch.inference_mode()
def zero_shot_similarity(
    encoder: torch.nn.Module, tokenizer: Any, examples: Sequence[ScoredPair], spec: Any, max_length: int
) -> dict[str, Any]:
    """Cosine of mean-pooled embeddings of each sentence, scaled to 0-4; no training at all."""
    encoder.eval()

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    a = embed([e.text_a for e in examples])
    b = embed([e.text_b for e in examples])
    cosine = torch.nn.functional.cosine_similarity(a, b).clamp(min=0.0)
    predictions = (4.0 * cosine).tolist()
    return metrics.compute(spec, [e.score for e in examples], predictions)
