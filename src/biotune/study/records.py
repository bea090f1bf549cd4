"""The study's record types: a run's status, what a finished run yields, and a stored row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from biotune.errors import ConfigError
from biotune.run_folder import StoredRunMetrics


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    PRUNED = "pruned"  # stopped early by a recipe search (`search:`): a trial's bookkeeping, not a result


FINISHED = (RunStatus.DONE, RunStatus.FAILED, RunStatus.PRUNED)


class RunPruned(Exception):
    """Raised by a search's `on_epoch` hook to stop a seed's training cleanly after a dev evaluation.

    Control flow like optuna.TrialPruned, not a BiotuneError: nothing reports it as a failure. It passes
    through `train_seed` and `run_training` untouched; `execute_run` turns it into a `pruned` outcome that
    keeps the epochs trained so far (`history`) as evidence.
    """

    def __init__(self, epoch: int, dev_score: float, history: list[dict[str, Any]]) -> None:
        super().__init__(f"pruned by the search after epoch {epoch} (dev {dev_score:.2f})")
        self.epoch = epoch
        self.dev_score = dev_score
        self.history = history


@dataclass(frozen=True)
class RunOutcome:
    """What one finished run yields; a worker builds it, the driver writes it to the store.

    `crashed` separates a run that raised (a bug, bad data: no result) from a run that trained
    to the end and was judged failed (diverged, collapsed: a stability result with scores).
    """

    run_id: str
    status: RunStatus
    dev_score: float | None
    test_score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    crashed: bool = False
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class RunRecord:
    """One row of the store: a run's identity, its state, and its result once finished."""

    run_id: str
    position: int
    model: str
    dataset: str
    technique: str
    techniques: tuple[str, ...]
    hyperparameters: dict[str, Any]
    seed: int
    config: dict[str, Any]
    status: RunStatus
    dev_score: float | None
    test_score: float | None
    metrics: dict[str, Any]
    error: str | None
    crashed: bool
    queued_at: float | None
    started_at: float | None
    ended_at: float | None
    seconds: float | None
    attempts: int
    worker: str | None
    run_dir: str

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def figures(self) -> StoredRunMetrics:
        """`metrics` as its model: scores, baselines, throughput, memory, device, epochs."""
        try:
            return StoredRunMetrics.model_validate(self.metrics)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(
                f"run {self.run_id} ({self.run_dir}): the study store's metrics for it are not what biotune "
                f"writes ({exc.error_count()} problem(s), first: {first['msg']} at {where}); make the report "
                "with the biotune that ran the study"
            ) from None

    @property
    def setting_key(self) -> str:
        """Its hyper-parameter setting, comparable across runs (the seed is not part of it)."""
        return json.dumps(self.hyperparameters, sort_keys=True)


def best_dev_run(records: Iterable[RunRecord]) -> RunRecord | None:
    """The successful run with the highest dev score; ties go to the first."""
    scored = [r for r in records if r.status == RunStatus.DONE and r.dev_score is not None]
    return max(scored, key=lambda r: r.dev_score or 0.0) if scored else None
