"""One seed: seed everything, build the model, apply the techniques, train, select on dev, score.

Task-agnostic: it sees feature sets, a model, a head kind (which fixes the loss), and the task's
`decode` + `metrics.compute` pair. The step is written out in full (nanoGPT style) rather than hidden in a
Trainer, so every stability technique's effect on it is visible.

A seed runs as setup (model, techniques, optimizer, every epoch's batches), epochs (the explicit step),
dev selection after each epoch (best or last, patience, the siamese epoch 0), and finish (restore the
selected weights, test, the collapse check), with one exit path. What depends on the hardware (precision,
fused AdamW, `TrainedRows`, the CPU dropout masks, clipping without a host sync, the evaluation budget) is
decided once per run in `biotune.device` and read here from `ctx.recipe`.

Speed on a CPU (measured by benchmarks/throughput.py; none of it changes the arithmetic beyond rounding):
batches filled to a token budget (almost no padding), evaluation batches cut for the fewest computed
positions, fused AdamW, word-embedding rows the training data never reaches left out of the optimizer
(`TrainedRows`), gradient clipping that skips its multiply by 1, one dev pass per epoch (the selected
epoch's evaluation is reused, not recomputed), and dropout masks drawn four to a 64-bit random number
(`biotune.dropout`: same distribution, a different random stream than torch's `bernoulli_`).
"""

from __future__ import annotations

import contextlib
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

from biotune.batching import iterate, padded_size, token_budget_batches
from biotune.config import TrainConfig
from biotune.device import DeviceRecipe
from biotune.dropout import cpu_dropout
from biotune.errors import TrainingDiverged
from biotune.inference import Evaluation, SplitData, Throughput, as_recipe, evaluate, model_inputs
from biotune.models import build_model, enable_gradient_checkpointing, extend_vocabulary, init_regression_head
from biotune.resources import batch_dimensions, out_of_memory_guard
from biotune.tasks import Task
from biotune.techniques import (
    TechniquePlan,
    apply_techniques,
    attach_pretrained_decay,
    build_param_groups,
    make_optimizer,
    mixout,
)

log = logging.getLogger("biotune.training")

__all__ = ["Evaluation", "SplitData", "Throughput", "evaluate"]  # re-exported: they live in biotune.inference


def set_seed(seed: int) -> None:
    """Every generator a run touches, before the model (and its new head) is built."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunContext:
    """What every seed of a run shares: data featurized once, the resolved config, the techniques, and how
    the device trains (`recipe`)."""

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
    recipe: DeviceRecipe
    train_target_mean: float | None = None

    @property
    def device(self) -> torch.device:
        return self.recipe.device

    @property
    def pad_token_id(self) -> int:
        return self.tokenizer.pad_token_id or 0


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
# after each dev evaluation: seed, epoch, train loss (None for epoch 0), dev score, optimizer param groups
EpochHook = Callable[[int, int, float | None, float, list[dict[str, Any]]], None]


def _epochs(config: TrainConfig, plan: TechniquePlan) -> int:
    assert config.epochs is not None
    return max(1, round(config.epochs * plan.epoch_factor)) if plan.epoch_factor else config.epochs


def make_seed_optimizer(
    groups: list[dict[str, Any]], lr: float, plan: TechniquePlan, where: DeviceRecipe | torch.device
) -> torch.optim.Optimizer:
    """AdamW as `make_optimizer` builds it, or the fused kernel where the recipe says it pays (the CPU)."""
    if plan.bias_correction and as_recipe(where).fused_adamw:
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

        None (nothing changed) unless the input embedding is a plain, untied nn.Embedding that one of the
        groups trains. Whether to use it at all is the device recipe's choice (`compact_embedding_rows`:
        the CPU, where it was measured), not this method's.
        """
        embedding = model.get_input_embeddings()
        if not isinstance(embedding, nn.Embedding) or embedding.max_norm is not None or embedding.sparse:
            return None
        weight = embedding.weight
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
    if ctx.train_target_mean is not None and config.pair_encoding != "siamese":
        init_regression_head(model, ctx.train_target_mean)
    initializer_range = float(getattr(model.config, "initializer_range", 0.02))
    applied = apply_techniques(model, ctx.plan, initializer_range, seed)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model.to(ctx.device), applied


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights in host memory: the selected epoch is not a second copy on the GPU."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


@dataclass
class SeedState:
    """One seed in flight: what setup built, and dev selection's running best."""

    ctx: RunContext
    seed: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    embedding_rows: TrainedRows | None
    epoch_batches: list[list[list[int]]]
    units_per_step: float
    patience: int | None
    outcome: SeedOutcome
    started: float
    step: int = 0
    best_score: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_dev: Evaluation | None = None
    stale: int = 0
    on_epoch: EpochHook | None = None

    @property
    def epochs(self) -> int:
        return len(self.epoch_batches)

    @property
    def total_steps(self) -> int:
        return sum(len(batches) for batches in self.epoch_batches)


def setup_seed(ctx: RunContext, seed: int) -> SeedState:
    """Model, techniques, optimizer and schedule, and every epoch's batches, in a fixed order (the random
    streams depend on it)."""
    config = ctx.config
    assert config.learning_rate is not None and config.batch_size is not None
    started = time.perf_counter()
    model, applied = build_seed_model(ctx, seed)
    groups = build_param_groups(
        model,
        applied.layout,
        config.learning_rate,
        config.weight_decay,
        ctx.plan.llrd_decay,
        ctx.plan.pretrained_decay,
        applied.reinit_names,
    )
    embedding_rows = None
    if ctx.recipe.compact_embedding_rows:
        embedding_rows = TrainedRows.attach(model, groups, ctx.train.features.features, ctx.pad_token_id)
    optimizer = make_seed_optimizer(groups, config.learning_rate, ctx.plan, ctx.recipe)
    attach_pretrained_decay(optimizer)  # pretrained-decay:L pulls toward the weights as they are now
    epochs = _epochs(config, ctx.plan)
    generator = torch.Generator().manual_seed(seed)
    # every epoch's batches up front: a token budget makes the number of steps known only once cut
    epoch_batches = [
        token_budget_batches(ctx.train.features.lengths, config.batch_size, generator) for _ in range(epochs)
    ]
    total_steps = sum(len(batches) for batches in epoch_batches)
    # every loss unit (labelled token or example) weighs the same in whichever batch it lands: the sum of
    # a step's losses over the units an average step holds
    units_per_step = sum(ctx.task.loss_units(ctx.train.features.features)) * epochs / total_steps
    warmup = ctx.plan.warmup_ratio if ctx.plan.warmup_ratio is not None else (config.warmup_ratio or 0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(warmup * total_steps), total_steps)
    return SeedState(
        ctx=ctx,
        seed=seed,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=ctx.recipe.grad_scaler(),
        embedding_rows=embedding_rows,
        epoch_batches=epoch_batches,
        units_per_step=units_per_step,
        patience=ctx.plan.patience or config.patience,
        outcome=SeedOutcome(seed, "ok", None, None, 0.0),
        started=started,
    )


def train_seed(
    ctx: RunContext, seed: int, on_step: ProgressHook | None = None, on_epoch: EpochHook | None = None
) -> SeedOutcome:
    """Train one seed; a diverged or collapsed seed comes back as status `failed`, never as an exception."""
    state = setup_seed(ctx, seed)
    state.on_epoch = on_epoch
    try:
        if ctx.config.pair_encoding == "siamese":
            # the untrained siamese model is the zero-shot baseline: a candidate like any epoch ("epoch 0")
            select_on_dev(state, 0, None)
        with contextlib.ExitStack() as training_only:
            training_only.enter_context(ctx.recipe.matmul_mode())
            training_only.enter_context(mixout(state.model, ctx.plan))  # gone before test and save
            if ctx.recipe.cpu_dropout:
                training_only.enter_context(cpu_dropout(state.model))
            for epoch, batches in enumerate(state.epoch_batches, start=1):
                train_loss = train_epoch(state, epoch, batches, on_step)
                if select_on_dev(state, epoch, train_loss) == "stop":
                    break
    except TrainingDiverged as exc:
        state.outcome.status, state.outcome.error = "failed", f"diverged: {exc}"
        log.warning("seed %d failed: %s", seed, state.outcome.error)
    finally:
        # also on out-of-memory and other errors: the embedding must not stay sparse
        if state.embedding_rows is not None:
            state.embedding_rows.release()
    return finish_seed(state)


def train_epoch(
    state: SeedState, epoch: int, batches: list[list[int]], on_step: ProgressHook | None
) -> float:
    """One pass over the epoch's batches; the mean train loss. A non-finite loss is a divergence."""
    ctx, config = state.ctx, state.ctx.config
    meter = state.outcome.throughput
    state.model.train()
    epoch_started = time.perf_counter()
    epoch_loss = 0.0
    for indices in batches:
        micro_batch = math.ceil(len(indices) / config.gradient_accumulation)
        loss_value = _optimizer_step(
            state.model,
            ctx,
            indices,
            micro_batch,
            ctx.pad_token_id,
            config.max_grad_norm,
            state.optimizer,
            state.units_per_step,
            state.embedding_rows,
            scaler=state.scaler,
        )
        state.scheduler.step()
        state.step += 1
        if not math.isfinite(loss_value):
            raise TrainingDiverged(f"loss became {loss_value} at epoch {epoch}, step {state.step}")
        epoch_loss += loss_value
        if on_step:
            on_step(
                {
                    "seed": state.seed,
                    "epoch": epoch,
                    "epochs": state.epochs,
                    "step": state.step,
                    "total_steps": state.total_steps,
                    "loss": loss_value,
                }
            )
    meter.train_seconds += time.perf_counter() - epoch_started
    tokens, positions = padded_size(ctx.train.features.lengths, batches)
    meter.train_tokens += tokens
    meter.train_positions += positions
    if state.embedding_rows is not None:
        state.embedding_rows.settle()
    return epoch_loss / max(1, len(batches))


def select_on_dev(state: SeedState, epoch: int, train_loss: float | None) -> str:
    """Score dev after an epoch (epoch 0: the untrained siamese model) and keep the selected weights;
    `stop` when patience runs out."""
    ctx, config, outcome = state.ctx, state.ctx.config, state.outcome
    dev = evaluate(state.model, ctx.task, ctx.dev, ctx.spec, ctx.pad_token_id, ctx.recipe, outcome.throughput)
    dev_score = float(dev.metrics["score"])
    outcome.history.append({"epoch": epoch, "train_loss": train_loss, "dev": dev_score})
    if state.on_epoch is not None:
        state.on_epoch(state.seed, epoch, train_loss, dev_score, state.optimizer.param_groups)
    if epoch == 0:
        state.best_score, state.best_dev, outcome.best_epoch = dev_score, dev, 0
        state.best_state = cpu_state(state.model)
        return "go on"
    log.info(
        "seed %d epoch %d/%d: train loss %.4f, dev score %.2f",
        state.seed,
        epoch,
        state.epochs,
        train_loss,
        dev_score,
    )
    if dev_score > state.best_score or config.checkpoint == "last":
        state.best_score, state.best_dev, outcome.best_epoch, state.stale = dev_score, dev, epoch, 0
        # the last epoch's weights are the model's own: no copy needed
        state.best_state = cpu_state(state.model) if epoch < state.epochs else None
        return "go on"
    state.stale += 1
    if state.patience and state.stale >= state.patience:
        log.info(
            "seed %d: early stop after epoch %d (no dev improvement for %d)", state.seed, epoch, state.stale
        )
        return "stop"
    return "go on"


def finish_seed(state: SeedState) -> SeedOutcome:
    """The one exit: a diverged seed as it is; otherwise the selected weights, test, the collapse check."""
    ctx, outcome, model = state.ctx, state.outcome, state.model
    if outcome.status == "failed":
        outcome.train_seconds = time.perf_counter() - state.started
        return outcome
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    outcome.train_seconds = time.perf_counter() - state.started
    meter = outcome.throughput
    # the selected weights were scored on dev when they were current, and evaluation is deterministic
    best_dev = state.best_dev
    if best_dev is None:  # no epoch's score compared (nan): the last weights stand
        best_dev = evaluate(model, ctx.task, ctx.dev, ctx.spec, ctx.pad_token_id, ctx.recipe, meter)
    outcome.dev = best_dev
    if ctx.test is not None:
        outcome.test = evaluate(model, ctx.task, ctx.test, ctx.spec, ctx.pad_token_id, ctx.recipe, meter)
    outcome.model = model
    dev_score = float(outcome.dev.metrics["score"])
    if not dev_score > ctx.trivial_dev_score + 1e-9:
        outcome.status = "failed"
        outcome.error = (
            f"collapsed: dev score {dev_score:.2f} is no better than the trivial baseline "
            f"({ctx.trivial_dev_score:.2f})"
        )
        log.warning("seed %d failed: %s", state.seed, outcome.error)
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
    *,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One optimizer step over a batch, in micro-batches of `micro_batch` examples.

    The loss is the sum over the batch's loss units divided by `units_per_step` (default: the batch's own
    count, i.e. the mean), so micro-batches add up to exactly the whole batch's gradient. The forward pass
    runs under the recipe's autocast; the loss is computed in fp32 from fp32 logits. With fp16's scaler, a
    step whose gradients overflowed is skipped (and the scale lowered): not a divergence.
    """
    features = ctx.train.features.features
    head = ctx.task.head
    recipe = ctx.recipe
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
            labels = batch["labels"].to(recipe.device)
            with recipe.autocast():
                logits = model(**model_inputs(batch, recipe.device)).logits
            loss = ctx.task.loss(logits.float(), labels, reduction="sum") / units_per_step
            (scaler.scale(loss) if scaler is not None else loss).backward()
        total += loss.item()
    if embedding_rows is not None:
        embedding_rows.collect_gradient()
    if math.isfinite(total):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if scaler is not None:
            scaler.unscale_(optimizer)
        if recipe.clip_without_unit_multiply:
            clip_gradients(params, max_grad_norm)
        else:  # no host sync: the coefficient is clamped on the device
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            stepped = scaler.get_scale() >= scale  # a skipped step lowers the scale
        else:
            optimizer.step()
            stepped = True
        if embedding_rows is not None and stepped:
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
