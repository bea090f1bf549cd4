"""`biotune study FILE --dry-run`: a study's size and cost, before any work and without the hub.

Per model x dataset x technique x hyper-parameters x seed the grid has one run; each run trains on
(train tokens of the featurized training split) x (epochs) tokens. Tokens are counted with the model's
tokenizer when it is available here, else with the default model's (a BERT WordPiece vocabulary, as
PubMedBERT and BERT use; it says so). Time per run = train tokens / a training rate in real tokens per
second: the one the user passes (`--tokens-per-second`, measured on their device for their model), or one
measured here in a few seconds on the default model. Evaluation is not in the estimate (it is a forward pass
over dev once an epoch, usually well under a fifth of the training time).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from biotune.config import DEFAULT_MODEL, TrainConfig
from biotune.data.loading import load_dataset
from biotune.data.paths import resolve_data_dir
from biotune.data.registry import get_spec
from biotune.errors import BiotuneError
from biotune.study.grid import RunSpec
from biotune.techniques import parse_techniques


@dataclass(frozen=True)
class DatasetCost:
    model: str
    dataset: str
    max_length: int
    train_tokens_per_epoch: int
    tokenizer: str  # the tokenizer that counted


@dataclass
class StudyEstimate:
    runs: int
    models: int
    datasets: int
    techniques: int
    seeds: int
    tokens_per_second: float
    rate_source: str
    costs: list[DatasetCost]
    per_run: list[tuple[RunSpec, int]] = field(default_factory=list)  # (run, train tokens)
    notes: list[str] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return sum(tokens for _, tokens in self.per_run)

    @property
    def total_seconds(self) -> float:
        return self.total_tokens / self.tokens_per_second


def run_epochs(config: TrainConfig) -> int:
    epochs = config.epochs if config.epochs is not None else get_spec(config.dataset or "").defaults.epochs
    plan = parse_techniques(config.techniques)
    return max(1, round(epochs * plan.epoch_factor)) if plan.epoch_factor else epochs


def counting_tokenizer(model: str) -> str:
    """The model itself when its tokenizer loads here; else the default model (a hub name offline)."""
    from biotune.models import load_tokenizer

    try:
        load_tokenizer(model)
    except BiotuneError:
        return DEFAULT_MODEL
    return model


@functools.lru_cache(maxsize=256)  # a dry run of a large grid asks for the same counts many times
def count_train_tokens(
    model: str, dataset: str, max_length: int, data_dir: Any, limit_train: int | None = None
) -> DatasetCost:
    """Real tokens of one epoch of the training split, featurized as a run featurizes it (the first
    `limit_train` examples, as `runs` cuts them)."""
    from biotune.models import load_tokenizer
    from biotune.tasks import TaskOptions, add_placeholder_tokens, task_for_spec

    counted_with = counting_tokenizer(model)
    tokenizer = load_tokenizer(counted_with)
    splits = load_dataset(dataset, resolve_data_dir(data_dir), splits=("train",))
    if limit_train is not None:
        splits.train = list(splits.train[:limit_train])
    task = task_for_spec(splits.spec, TaskOptions())
    add_placeholder_tokens(tokenizer, task.special_tokens(splits.train))
    features = task.featurize(splits.train, tokenizer, max_length)
    return DatasetCost(model, splits.spec.name, max_length, sum(features.lengths), counted_with)


def measure_tokens_per_second(precision: str = "fp32", seconds: float = 8.0) -> float:
    """Training rate of the default model here: steps of batch 32 x 64 tokens, for about `seconds`."""
    import torch

    from biotune.device import recipe_for
    from biotune.models import build_model

    recipe = recipe_for("auto", precision)
    torch.manual_seed(0)
    model = build_model(DEFAULT_MODEL, "token", ["B", "I", "O"]).to(recipe.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (32, 64), device=recipe.device)
    labels = torch.randint(0, 3, (32, 64), device=recipe.device)

    def step() -> None:
        with recipe.autocast():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 3), labels.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done < 2:
        step()
        done += 1
    if recipe.device.type == "cuda":
        torch.cuda.synchronize()
    return done * ids.numel() / (time.perf_counter() - started)


def estimate_study(
    runs: list[RunSpec],
    tokens_per_second: float | None = None,
    measure: Callable[[str], float] = measure_tokens_per_second,
) -> StudyEstimate:
    costs: dict[tuple[str, str, int, int | None], DatasetCost] = {}
    counted: dict[tuple[str, str, int, int | None], DatasetCost] = {}  # by the tokenizer that counts
    tokenizers: dict[str, str] = {}
    per_run: list[tuple[RunSpec, int]] = []
    notes: list[str] = []
    for run in runs:
        config = run.config
        spec = get_spec(run.dataset)
        max_length = config.max_length or spec.max_length
        key = (run.model, spec.name, max_length, config.limit_train)
        if key not in costs:
            tokenizer = tokenizers.setdefault(run.model, counting_tokenizer(run.model))
            by_tokenizer = (tokenizer, spec.name, max_length, config.limit_train)
            if by_tokenizer not in counted:
                try:
                    counted[by_tokenizer] = count_train_tokens(
                        tokenizer, spec.name, max_length, config.data_dir, config.limit_train
                    )
                except BiotuneError as exc:  # e.g. a split that is not staged here
                    notes.append(f"{spec.name}: not counted, its runs are left out of the total ({exc})")
                    counted[by_tokenizer] = DatasetCost(tokenizer, spec.name, max_length, 0, "none")
            cost = counted[by_tokenizer]
            costs[key] = DatasetCost(
                run.model, spec.name, max_length, cost.train_tokens_per_epoch, cost.tokenizer
            )
        per_run.append((run, costs[key].train_tokens_per_epoch * run_epochs(config)))
    precisions = sorted({run.config.precision for run in runs}) or ["fp32"]
    if tokens_per_second is None:
        tokens_per_second = measure(precisions[0])
        source = f"measured here: the default model, {precisions[0]}, batch 32 x 64"
    else:
        source = "given (--tokens-per-second)"
    if tokens_per_second <= 0 or not math.isfinite(tokens_per_second):
        raise BiotuneError(
            f"a training rate must be a positive number of tokens per second, got {tokens_per_second}"
        )
    counted_with_default = sorted(
        {c.model for c in costs.values() if c.tokenizer == DEFAULT_MODEL and c.model != DEFAULT_MODEL}
    )
    if counted_with_default:
        notes.append(
            f"tokens of {', '.join(counted_with_default)} counted with the default model's tokenizer (not "
            "available offline here); a different vocabulary changes the counts by a few percent"
        )
    return StudyEstimate(
        runs=len(runs),
        models=len({r.model for r in runs}),
        datasets=len({r.dataset for r in runs}),
        techniques=len({r.technique for r in runs}),
        seeds=len({r.seed for r in runs}),
        tokens_per_second=tokens_per_second,
        rate_source=source,
        costs=list(costs.values()),
        per_run=per_run,
        notes=list(dict.fromkeys(notes)),
    )
