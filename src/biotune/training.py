"""One seed: seed everything, build the model, apply the techniques, train, select on dev, score.

Task-agnostic: it sees feature sets, a model, a head kind (which fixes the loss), and the task's
`decode` + `metrics.compute` pair. The step is written out in full (nanoGPT style) rather than hidden in a
Trainer, so every stability technique's effect on it is visible.

Speed on a CPU (measured by benchmarks/throughput.py; none of it changes the arithmetic beyond rounding):
batches filled to a token budget (almost no padding), evaluation batches cut for the fewest computed
positions, fused AdamW, word-embedding rows the training data never reaches left out of the optimizer
(`TrainedRows`), gradient clipping that skips its multiply by 1, one dev pass per epoch (the selected
epoch's evaluation is reused, not recomputed), and dropout masks drawn four to a 64-bit random number
(`biotune.dropout`: same distribution, a different random stream than torch's `bernoulli_`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from biotune import metrics
from biotune.batching import iterate, padded_size, sorted_batches, token_budget_batches
from biotune.config import TrainConfig
from biotune.dropout import cpu_dropout
from biotune.errors import TrainingDiverged
from biotune.models import build_model, extend_vocabulary, init_regression_head
from biotune.resources import batch_dimensions, out_of_memory_guard
from biotune.tasks import FeatureSet, Task
from biotune.tasks.base import HeadKind
from biotune.techniques import TechniquePlan, apply_techniques, build_param_groups, make_optimizer

log = logging.getLogger("biotune.training")

# Positions per evaluation batch at most: on a CPU a forward pass is no faster per token beyond a few
# hundred positions (MiniLM-L6, measured from 128 to 4096), and smaller batches let lengths match closely.
EVAL_TOKENS_PER_BATCH = 4096


def set_seed(seed: int) -> None:
    """Every generator a run touches, before the model (and its new head) is built."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


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


@torch.inference_mode()
def predict_outputs(
    model: nn.Module,
    features: FeatureSet,
    head: HeadKind,
    pad_token_id: int,
    device: torch.device,
    meter: Throughput | None = None,
) -> list[np.ndarray]:
    """Raw outputs per feature, in feature order; token heads trimmed to each feature's real length."""
    model.eval()
    outputs: list[np.ndarray] = [np.empty(0)] * len(features.features)
    batches = sorted_batches(features.lengths, EVAL_TOKENS_PER_BATCH)
    if meter is not None:
        tokens, positions = padded_size(features.lengths, batches)
        meter.eval_tokens += tokens
        meter.eval_positions += positions
    for indices, batch in iterate(features.features, batches, pad_token_id, head):
        with out_of_memory_guard(*batch_dimensions(batch)):
            logits = model(**model_inputs(batch, device)).logits.float().cpu().numpy()
        if not np.isfinite(logits).all():
            raise TrainingDiverged("the model's outputs became non-finite (nan/inf)")
        for row, index in enumerate(indices):
            outputs[index] = logits[row, : features.lengths[index]] if head == "token" else logits[row]
    return outputs


@dataclass
class SplitData:
    examples: Sequence[Any]
    features: FeatureSet


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    predictions: list[Any]


def evaluate(
    model: nn.Module,
    task: Task,
    split: SplitData,
    spec: Any,
    pad_token_id: int,
    device: torch.device,
    meter: Throughput | None = None,
) -> Evaluation:
    started = time.perf_counter()
    outputs = predict_outputs(model, split.features, task.head, pad_token_id, device, meter)
    predictions = task.decode(split.examples, split.features, outputs)
    scores = metrics.compute(spec, task.gold(split.examples), predictions)
    if meter is not None:
        meter.eval_seconds += time.perf_counter() - started
    return Evaluation(scores, predictions)


@dataclass
class RunContext:
    """What every seed of a run shares: data featurized once, the resolved config, the techniques."""

    config: TrainConfig
    spec: Any
    task: Task
    tokenizer: PreTrainedTokenizerBase
    train: SplitData
    dev: SplitData
    test: SplitData | None
    plan: TechniquePlan
    added_token_pieces: dict[str, list[int]]
    trivial_dev_score: float
    device: torch.device
    train_target_mean: float | None = None


@dataclass
class SeedOutcome:
    seed: int
    status: str  # ok | failed
    error: str | None
    best_epoch: int | None
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    dev: Evaluation | None = None
    test: Evaluation | None = None
    model: nn.Module | None = None
    throughput: Throughput = field(default_factory=Throughput)


ProgressHook = Callable[[dict[str, Any]], None]


def _epochs(config: TrainConfig, plan: TechniquePlan) -> int:
    assert config.epochs is not None
    return max(1, round(config.epochs * plan.epoch_factor)) if plan.epoch_factor else config.epochs


def make_seed_optimizer(
    groups: list[dict[str, Any]], lr: float, plan: TechniquePlan, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW as `make_optimizer` builds it; on a CPU the fused kernel (one pass over each tensor instead of
    a dozen): about 40% less optimizer time there (MiniLM-L6, one thread: 77 ms a step instead of 124)."""
    if plan.bias_correction and device.type == "cpu":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=0.0, fused=True)
    return make_optimizer(groups, lr, bias_correction=plan.bias_correction)


class TrainedRows:
    """Word embeddings, optimized only where the training data can reach.

    A row whose token never occurs in the training features never gets a gradient, and AdamW (decoupled
    weight decay, moments that stay zero) only shrinks it by (1 - lr * weight_decay) per step. So the rows
    that do occur are optimized as one compact parameter, copied back into the embedding after each step,
    and the others are shrunk in one go whenever the weights are read (`settle`). Same arithmetic as AdamW
    over the whole matrix, up to rounding, for a fraction of the memory traffic: on a CPU a 30k-token
    vocabulary is half of a small encoder's parameters. The embedding's gradient comes back sparse, so no
    vocabulary-sized gradient is allocated and zeroed each step either.
    """

    def __init__(self, embedding: nn.Embedding, token_ids: torch.Tensor) -> None:
        self.embedding = embedding
        self.weight = embedding.weight
        vocabulary = self.weight.shape[0]
        self.rows = token_ids.to(self.weight.device)
        untouched = torch.ones(vocabulary, dtype=torch.bool, device=self.weight.device)
        untouched[self.rows] = False
        self.others = untouched.nonzero().squeeze(1)
        self.slot = torch.full((vocabulary,), -1, dtype=torch.long, device=self.weight.device)
        self.slot[self.rows] = torch.arange(len(self.rows), device=self.weight.device)
        self.compact = nn.Parameter(self.weight.detach()[self.rows].clone())
        self.gradient = torch.zeros_like(self.compact)
        self.shrink = 1.0  # pending factor for the other rows
        self.group: dict[str, Any] | None = None
        embedding.sparse = True

    @classmethod
    def attach(
        cls,
        model: nn.Module,
        groups: list[dict[str, Any]],
        features: Sequence[dict[str, Any]],
        pad_token_id: int,
    ) -> TrainedRows | None:
        """Swap the compact rows in for the embedding in the optimizer's parameter groups.

        None (nothing changed) unless the input embedding is a plain, untied nn.Embedding on the CPU (where
        it was measured) that one of the groups trains.
        """
        embedding = model.get_input_embeddings()
        if not isinstance(embedding, nn.Embedding) or embedding.max_norm is not None or embedding.sparse:
            return None
        weight = embedding.weight
        if weight.device.type != "cpu":
            return None
        if sum(p is weight for _, p in model.named_parameters(remove_duplicate=False)) != 1:
            return None  # tied to another module: its gradient would come from there too
        place = next(
            ((group, i) for group in groups for i, p in enumerate(group["params"]) if p is weight), None
        )
        if place is None:  # frozen
            return None
        ids = [pad_token_id]
        for feature in features:
            for key, value in feature.items():
                if key.startswith("input_ids"):
                    ids.extend(value)
        rows = cls(embedding, torch.unique(torch.tensor(ids, dtype=torch.long)))
        group, index = place
        group["params"][index] = rows.compact
        rows.group = group
        return rows

    def collect_gradient(self) -> None:
        """The embedding's (sparse) gradient, as the compact parameter's dense one."""
        gradient, self.weight.grad = self.weight.grad, None
        if gradient is None:
            return
        self.gradient.zero_()
        if gradient.is_sparse:
            slots, values = self.slot[gradient._indices()[0]], gradient._values()
        else:  # a model that looks its embedding up without the module: rows outside `rows` are zero
            slots, values = torch.arange(len(self.rows), device=self.rows.device), gradient[self.rows]
        if bool((slots < 0).any()):
            raise RuntimeError("a token outside the training features reached the embedding")
        self.gradient.index_add_(0, slots, values)
        self.compact.grad = self.gradient

    def stepped(self) -> None:
        """After an optimizer step: the new rows into the embedding, this step's decay for the others."""
        assert self.group is not None, "made by attach"
        with torch.no_grad():
            self.weight.index_copy_(0, self.rows, self.compact)
        self.shrink *= 1.0 - self.group["lr"] * self.group["weight_decay"]

    def settle(self) -> None:
        """Apply the pending weight decay to the rows outside the training data."""
        if self.shrink != 1.0:
            with torch.no_grad():
                self.weight.index_copy_(0, self.others, self.weight[self.others] * self.shrink)
            self.shrink = 1.0

    def release(self) -> None:
        self.settle()
        self.embedding.sparse = False


def build_seed_model(ctx: RunContext, seed: int) -> tuple[nn.Module, Any]:
    config = ctx.config
    set_seed(seed)
    model = build_model(
        config.model,
        ctx.task.head,
        list(ctx.task.labels),
        pooling=config.pooling or "cls",
        dropout=config.dropout,
        trust_remote_code=config.trust_remote_code,
        pair_encoding=config.pair_encoding or "cross",
    )
    extend_vocabulary(model, ctx.tokenizer, ctx.added_token_pieces)
    if (
        ctx.task.head == "regression"
        and ctx.train_target_mean is not None
        and config.pair_encoding != "siamese"
    ):
        init_regression_head(model, ctx.train_target_mean)
    initializer_range = float(getattr(model.config, "initializer_range", 0.02))
    applied = apply_techniques(model, ctx.plan, initializer_range, seed)
    return model.to(ctx.device), applied


def train_seed(ctx: RunContext, seed: int, on_step: ProgressHook | None = None) -> SeedOutcome:
    """Train one seed; a diverged or collapsed seed comes back as status `failed`, never as an exception."""
    config = ctx.config
    assert config.learning_rate is not None and config.batch_size is not None
    start = time.perf_counter()
    model, applied = build_seed_model(ctx, seed)
    groups = build_param_groups(
        model, applied.layout, config.learning_rate, config.weight_decay, ctx.plan.llrd_decay
    )
    pad_id = ctx.tokenizer.pad_token_id or 0
    embedding_rows = TrainedRows.attach(model, groups, ctx.train.features.features, pad_id)
    optimizer = make_seed_optimizer(groups, config.learning_rate, ctx.plan, ctx.device)
    epochs = _epochs(config, ctx.plan)
    lengths = ctx.train.features.lengths
    generator = torch.Generator().manual_seed(seed)
    # every epoch's batches up front: a token budget makes the number of steps known only once cut
    plans = [token_budget_batches(lengths, config.batch_size, generator) for _ in range(epochs)]
    total_steps = sum(len(batches) for batches in plans)
    # every loss unit (labelled token or example) weighs the same in whichever batch it lands: the sum of
    # a step's losses over the units an average step holds
    units_per_step = sum(ctx.task.loss_units(ctx.train.features.features)) * epochs / total_steps
    warmup = ctx.plan.warmup_ratio if ctx.plan.warmup_ratio is not None else (config.warmup_ratio or 0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(warmup * total_steps), total_steps)
    patience = ctx.plan.patience or config.patience

    outcome = SeedOutcome(seed, "ok", None, None, 0.0)
    meter = outcome.throughput
    best_score, best_state, best_dev, stale = -math.inf, None, None, 0
    if config.pair_encoding == "siamese":
        # the untrained siamese model is the zero-shot baseline: a candidate like any epoch ("epoch 0")
        best_dev = evaluate(model, ctx.task, ctx.dev, ctx.spec, pad_id, ctx.device, meter)
        best_score = float(best_dev.metrics["score"])
        best_state, outcome.best_epoch = copy.deepcopy(model.state_dict()), 0
        outcome.history.append({"epoch": 0, "train_loss": None, "dev": best_score})
    step = 0
    with contextlib.ExitStack() as training_only:
        if ctx.device.type == "cpu":
            training_only.enter_context(cpu_dropout(model))
        try:
            for epoch, batches in enumerate(plans, start=1):
                model.train()
                epoch_started = time.perf_counter()
                epoch_loss = 0.0
                for indices in batches:
                    micro_batch = math.ceil(len(indices) / config.gradient_accumulation)
                    loss_value = _optimizer_step(
                        model,
                        ctx,
                        indices,
                        micro_batch,
                        pad_id,
                        config.max_grad_norm,
                        optimizer,
                        units_per_step,
                        embedding_rows,
                    )
                    scheduler.step()
                    step += 1
                    if not math.isfinite(loss_value):
                        raise TrainingDiverged(f"loss became {loss_value} at epoch {epoch}, step {step}")
                    epoch_loss += loss_value
                    if on_step:
                        on_step(
                            {
                                "seed": seed,
                                "epoch": epoch,
                                "epochs": epochs,
                                "step": step,
                                "total_steps": total_steps,
                                "loss": loss_value,
                            }
                        )
                meter.train_seconds += time.perf_counter() - epoch_started
                tokens, positions = padded_size(lengths, batches)
                meter.train_tokens += tokens
                meter.train_positions += positions
                if embedding_rows is not None:
                    embedding_rows.settle()
                dev = evaluate(model, ctx.task, ctx.dev, ctx.spec, pad_id, ctx.device, meter)
                dev_score = float(dev.metrics["score"])
                outcome.history.append(
                    {"epoch": epoch, "train_loss": epoch_loss / max(1, len(batches)), "dev": dev_score}
                )
                log.info(
                    "seed %d epoch %d/%d: train loss %.4f, dev score %.2f",
                    seed,
                    epoch,
                    epochs,
                    epoch_loss / max(1, len(batches)),
                    dev_score,
                )
                improved = dev_score > best_score or config.checkpoint == "last"
                if improved:
                    best_score, best_dev, outcome.best_epoch, stale = dev_score, dev, epoch, 0
                    best_state = copy.deepcopy(model.state_dict()) if epoch < epochs else None
                else:
                    stale += 1
                    if patience and stale >= patience:
                        log.info(
                            "seed %d: early stop after epoch %d (no dev improvement for %d)",
                            seed,
                            epoch,
                            stale,
                        )
                        break
        except TrainingDiverged as exc:
            outcome.status, outcome.error = "failed", f"diverged: {exc}"
            if embedding_rows is not None:
                embedding_rows.release()
            outcome.train_seconds = time.perf_counter() - start
            log.warning("seed %d failed: %s", seed, outcome.error)
            return outcome

    if embedding_rows is not None:
        embedding_rows.release()
    if best_state is not None:
        model.load_state_dict(best_state)
    outcome.train_seconds = time.perf_counter() - start
    # the selected weights were scored on dev when they were current, and evaluation is deterministic
    if best_dev is None:  # no epoch's score compared (nan): the last weights stand
        best_dev = evaluate(model, ctx.task, ctx.dev, ctx.spec, pad_id, ctx.device, meter)
    outcome.dev = best_dev
    if ctx.test is not None:
        outcome.test = evaluate(model, ctx.task, ctx.test, ctx.spec, pad_id, ctx.device, meter)
    outcome.model = model
    dev_score = float(outcome.dev.metrics["score"])
    if not dev_score > ctx.trivial_dev_score + 1e-9:
        outcome.status = "failed"
        outcome.error = (
            f"collapsed: dev score {dev_score:.2f} is no better than the trivial baseline "
            f"({ctx.trivial_dev_score:.2f})"
        )
        log.warning("seed %d failed: %s", seed, outcome.error)
    return outcome


def _optimizer_step(
    model: nn.Module,
    ctx: RunContext,
    indices: list[int],
    micro_batch: int,
    pad_id: int,
    max_grad_norm: float,
    optimizer: torch.optim.Optimizer,
    units_per_step: float | None = None,
    embedding_rows: TrainedRows | None = None,
) -> float:
    """One optimizer step over a batch, in micro-batches of `micro_batch` examples.

    The loss is the sum over the batch's loss units divided by `units_per_step` (default: the batch's own
    count, i.e. the mean), so micro-batches add up to exactly the whole batch's gradient.
    """
    features = ctx.train.features.features
    head = ctx.task.head
    if units_per_step is None:
        units_per_step = max(1, sum(ctx.task.loss_units([features[i] for i in indices])))
    chunks = [indices[i : i + micro_batch] for i in range(0, len(indices), micro_batch)]
    total = 0.0
    config = ctx.config
    for _, batch in iterate(features, chunks, pad_id, head):
        rows, length = batch_dimensions(batch)
        with out_of_memory_guard(
            rows, length, batch_size=config.batch_size, accumulation=config.gradient_accumulation
        ):
            labels = batch["labels"].to(ctx.device)
            logits = model(**model_inputs(batch, ctx.device)).logits
            loss = ctx.task.loss(logits, labels, reduction="sum") / units_per_step
            loss.backward()
        total += loss.item()
    if embedding_rows is not None:
        embedding_rows.collect_gradient()
    if math.isfinite(total):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        clip_gradients(params, max_grad_norm)
        optimizer.step()
        if embedding_rows is not None:
            embedding_rows.stepped()
    optimizer.zero_grad(set_to_none=True)
    return total


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> None:
    """`torch.nn.utils.clip_grad_norm_`, without its multiply by exactly 1 when the norm is in bounds
    (one pass over every gradient saved; the coefficient is computed as torch computes it)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if not (max_norm / (norm + 1e-6)).item() >= 1.0:  # also clips (to nan) when the norm is not finite
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
