"""Head kinds: what the last layer computes, which fixes the loss, the label batch and the model class.

- `token`: one row of label logits per position (NER, PICO); cross-entropy over the labelled positions.
- `sequence`: one row of label logits per example from the pooled output; cross-entropy.
- `regression`: one output per example (similarity); mean squared error.
- `multilabel`: one independent logit per label; binary cross-entropy, averaged over the labels.

A task names its head kind (`Task.head`); `get_head(kind)` is the one object the engine, the batcher, the
model code and the model card ask for everything that depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from biotune.errors import ConfigError

HeadKind = Literal["token", "sequence", "regression", "multilabel"]

# The one ignore index: cross-entropy skips these label positions (specials, later sub-tokens, context words).
IGNORE_INDEX = -100


class Head:
    """A sequence-level head over one pooled vector, with softmax over the labels (`sequence`)."""

    kind: HeadKind = "sequence"
    # A pooled head reads one vector per example (CLS or the masked mean); a token head reads every position.
    pooled = True
    pipeline_tag = "text-classification"

    @property
    def auto_model_class(self) -> Any:
        """The Hugging Face class a CLS-pooled model of this head saves as and loads with."""
        return AutoModelForSequenceClassification

    def num_outputs(self, labels: Sequence[str]) -> int:
        return len(labels)

    def hf_config(self, labels: Sequence[str]) -> dict[str, Any]:
        """Keyword arguments of `from_pretrained` that size the head and name its labels."""
        kwargs: dict[str, Any] = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
        kwargs.update(self._problem_type())
        return kwargs

    def _problem_type(self) -> dict[str, str]:
        return {"problem_type": "single_label_classification"}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        """The batch's `labels` tensor; `width` is the padded sequence length of the batch."""
        return torch.tensor(labels, dtype=torch.long)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        """The head's loss, averaged over (`mean`) or summed over (`sum`) its units.

        A unit is what one loss term scores: a labelled token for token heads, an example otherwise (a
        multi-label example's loss is the mean over its labels).
        """
        return F.cross_entropy(logits, labels, reduction=reduction)

    def loss_units(self, features: Sequence[dict[str, Any]]) -> list[int]:
        """Per feature, how many loss units it holds (see `loss`)."""
        return [1] * len(features)

    def card_labels(self, labels: Sequence[str]) -> str:
        """The model card's line about the outputs."""
        return (
            "In `config.json` `id2label`: "
            + ", ".join(f"{i} = `{label}`" for i, label in enumerate(labels))
            + "."
        )

    def snippet_predict(self, params: str, texts: str) -> str:
        """The model card snippet's `predict` function, over its `logits` function."""
        return f"""

def predict({params}) -> dict[str, float]:
    probabilities = logits({texts}).softmax(-1)
    return {{config.id2label[i]: float(p) for i, p in enumerate(probabilities)}}
"""


class TokenHead(Head):
    kind: HeadKind = "token"
    pooled = False
    pipeline_tag = "token-classification"

    @property
    def auto_model_class(self) -> Any:
        return AutoModelForTokenClassification

    def _problem_type(self) -> dict[str, str]:
        return {}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        padded = torch.full((len(labels), width), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(labels):
            padded[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return padded

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction=reduction,
        )

    def loss_units(self, features: Sequence[dict[str, Any]]) -> list[int]:
        return [len(f["labels"]) - f["labels"].count(IGNORE_INDEX) for f in features]


class RegressionHead(Head):
    kind: HeadKind = "regression"

    def num_outputs(self, labels: Sequence[str]) -> int:
        return 1

    def hf_config(self, labels: Sequence[str]) -> dict[str, Any]:
        return {"num_labels": 1, "problem_type": "regression"}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        return torch.tensor(labels, dtype=torch.float)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        return F.mse_loss(logits.squeeze(-1), labels, reduction=reduction)

    def card_labels(self, labels: Sequence[str]) -> str:
        return "One output: the similarity score, on the scale of the training data."

    def snippet_predict(self, params: str, texts: str) -> str:
        return f"""

def predict({params}) -> float:
    return float(logits({texts})[0])
"""


class MultilabelHead(Head):
    kind: HeadKind = "multilabel"

    def _problem_type(self) -> dict[str, str]:
        return {"problem_type": "multi_label_classification"}

    def collate_labels(self, labels: list[Any], width: int) -> torch.Tensor:
        return torch.tensor(labels, dtype=torch.float)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction=reduction)
        return loss / labels.shape[-1] if reduction == "sum" else loss

    def snippet_predict(self, params: str, texts: str) -> str:
        return f"""

def predict({params}, threshold: float = 0.5) -> list[str]:
    probabilities = logits({texts}).sigmoid()
    return [config.id2label[i] for i, p in enumerate(probabilities) if p > threshold]
"""


HEADS: dict[str, Head] = {
    head.kind: head for head in (TokenHead(), Head(), RegressionHead(), MultilabelHead())
}


def get_head(kind: str) -> Head:
    head = HEADS.get(kind)
    if head is None:
        raise ConfigError(f"unknown head kind {kind!r}; choose one of {', '.join(HEADS)}")
    return head
