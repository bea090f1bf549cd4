"""Experiment tracking: each seed of a run as a TensorBoard run and/or an MLflow run (`report_to`).

Per seed: the resolved config (params), per-epoch train loss, dev score and the learning rate of every
optimizer parameter group (so layer-wise lr decay is visible), the final dev/test metrics, and the run
folder as a pointer (a tag; no weights are uploaded). A study logs each run under one MLflow experiment
named after the study folder, tagged with model, dataset, technique and seed.

Tracking is an observer: a backend that fails mid-run (tracking server down, disk full) warns once and is
switched off for the rest of the run; it never fails the run nor changes its training (every call runs
with the random generators' states saved and restored).

Both backends are optional (`pip install 'biotune[tracking]'`); `check_available` fails up front when a
requested one is missing. MLflow writes where MLFLOW_TRACKING_URI says, else to MLflow's own default
local store in the working folder (a `mlflow.db` SQLite file with artifacts under `./mlruns` since MLflow
3.7, which refuses the bare `./mlruns` file store; `./mlruns` with older versions).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from biotune.errors import ConfigError

log = logging.getLogger("biotune.tracking")

# backend name -> the module it needs
BACKEND_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
INSTALL_HINT = "pip install 'biotune[tracking]'"
DEFAULT_EXPERIMENT = "biotune"
TENSORBOARD_FOLDER = "tensorboard"
# MLflow takes at most 100 params per log_batch call
MLFLOW_PARAMS_PER_BATCH = 100


def parse_report_to(values: Sequence[str]) -> list[str]:
    """`["tensorboard,mlflow"]` or `["tensorboard", "mlflow"]` -> the distinct backend names, in order;
    `none` means no tracking (the Hugging Face Trainer's spelling)."""
    names: list[str] = []
    for value in values:
        for part in str(value).split(","):
            name = part.strip().lower()
            if not name or name == "none":
                continue
            if name not in BACKEND_MODULES:
                raise ValueError(
                    f"unknown tracking backend {part.strip()!r}; choose from {', '.join(BACKEND_MODULES)}"
                )
            if name not in names:
                names.append(name)
    return names


def check_available(report_to: Sequence[str]) -> None:
    """A ConfigError naming the install command when a requested backend's package is missing."""
    missing = [name for name in report_to if importlib.util.find_spec(BACKEND_MODULES[name]) is None]
    if missing:
        raise ConfigError(
            f"--report-to {','.join(missing)} needs the {' and '.join(missing)} package(s): "
            f"`{INSTALL_HINT}` (or drop report_to)"
        )


@dataclass(frozen=True)
class RunTracking:
    """Where a run's seeds are logged: the MLflow experiment, and tags every seed carries (a study sets
    both; a plain `biotune train` uses $MLFLOW_EXPERIMENT_NAME or `biotune`)."""

    experiment: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def experiment_name(self) -> str:
        return self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


@dataclass(frozen=True)
class SeedStart:
    """What a backend needs to open one seed's run."""

    seed: int
    run_name: str
    experiment: str
    params: dict[str, str]
    tags: dict[str, str]
    run_folder: Path
    seed_folder: Path


class Tracker(Protocol):
    """One tracking backend. Calls may raise: `Tracking` turns a failure into one warning."""

    name: str

    def start_seed(self, start: SeedStart) -> None: ...

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None: ...

    def finish_seed(self, final: dict[str, float], status: str) -> None: ...


class TensorBoardTracker:
    """`torch.utils.tensorboard.SummaryWriter`, one log folder per seed: <run folder>/tensorboard/seed-N
    (`tensorboard --logdir` on a run or study folder shows every seed)."""

    name = "tensorboard"

    def __init__(self) -> None:
        self.writer: Any = None

    def start_seed(self, start: SeedStart) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(start.run_folder / TENSORBOARD_FOLDER / f"seed-{start.seed}"))
        self.writer.add_text("config", _markdown_table(start.params), 0)
        self.writer.add_text("tags", _markdown_table(start.tags), 0)
        self.writer.add_text("run_folder", str(start.seed_folder), 0)

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def finish_seed(self, final: dict[str, float], status: str) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        for key, value in final.items():
            writer.add_scalar(key, value, 0)
        writer.add_text("status", status, 0)
        writer.close()


class MlflowTracker:
    """`mlflow.MlflowClient` (no global active run, so a user's own open run is left alone): one MLflow
    run per seed in the experiment, params, per-epoch metrics, tags."""

    name = "mlflow"

    def __init__(self) -> None:
        self.client: Any = None
        self.run_id: str | None = None

    def start_seed(self, start: SeedStart) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        if self.client is None:
            self.client = MlflowClient()
        experiment_id = self._experiment_id(start.experiment)
        run = self.client.create_run(experiment_id, run_name=start.run_name, tags=start.tags)
        self.run_id = run.info.run_id
        params = [Param(key, value) for key, value in start.params.items()]
        for first in range(0, len(params), MLFLOW_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[first : first + MLFLOW_PARAMS_PER_BATCH])

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # another worker of the study created it meanwhile
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        self._log_metrics(values, epoch)

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(key, value, stamp, step) for key, value in values.items()]
        if metrics and self.run_id is not None:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish_seed(self, final: dict[str, float], status: str) -> None:
        run_id = self.run_id
        if run_id is None:
            return
        self._log_metrics(final, 0)
        self.client.set_tag(run_id, "biotune.status", status)
        self.client.set_terminated(run_id, "FINISHED" if status == "ok" else "FAILED")
        self.run_id = None


BACKENDS: dict[str, type[TensorBoardTracker] | type[MlflowTracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
}


@contextlib.contextmanager
def random_state_kept() -> Iterator[None]:
    """Whatever a backend draws (run names, ids, retries' jitter) leaves training's random streams as
    they were."""
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    # devices=[]: CUDA generators are not read per call (a sync); backends draw on the CPU only
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class Tracking:
    """The backends a run reports to; each failure warns once and switches that backend off."""

    def __init__(self, trackers: Sequence[Tracker], run_tracking: RunTracking, run_folder: Path) -> None:
        self.trackers = list(trackers)
        self.run_tracking = run_tracking
        self.run_folder = Path(run_folder).resolve()
        self.failed: set[str] = set()

    def _call(self, action: str, method: str, *args: Any) -> None:
        for tracker in self.trackers:
            if tracker.name in self.failed:
                continue
            try:
                with random_state_kept():
                    getattr(tracker, method)(*args)
            except Exception as exc:  # a tracking failure must never fail or change the run
                self.failed.add(tracker.name)
                log.warning(
                    "tracking with %s failed while %s (%s: %s); the run goes on without %s",
                    tracker.name,
                    action,
                    type(exc).__name__,
                    exc,
                    tracker.name,
                )

    def start_seed(self, seed: int, config: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        all_tags = {**tags, **self.run_tracking.tags, "seed": str(seed)}
        seed_folder = self.run_folder / f"seed-{seed}"
        all_tags["biotune.run_folder"] = str(self.run_folder)
        all_tags["biotune.seed_folder"] = str(seed_folder)
        label = " / ".join(all_tags[key] for key in ("model", "dataset", "technique") if all_tags.get(key))
        start = SeedStart(
            seed=seed,
            run_name=f"{label} / seed {seed}" if label else f"seed {seed}",
            experiment=self.run_tracking.experiment_name(),
            params=flat_params(config),
            tags=all_tags,
            run_folder=self.run_folder,
            seed_folder=seed_folder,
        )
        self._call(f"starting seed {seed}", "start_seed", start)

    def log_epoch(
        self,
        seed: int,
        epoch: int,
        train_loss: float | None,
        dev_score: float,
        param_groups: Sequence[Mapping[str, Any]],
    ) -> None:
        """The `on_epoch` hook of `biotune.training.train_seed`."""
        values = {"dev/score": dev_score}
        if train_loss is not None:  # epoch 0 (the untrained siamese model) has no training loss
            values["train/loss"] = train_loss
        values.update({f"lr/{name}": lr for name, lr in group_learning_rates(param_groups).items()})
        self._call(f"logging epoch {epoch} of seed {seed}", "log_epoch", epoch, values)

    def finish_seed(self, record: Mapping[str, Any]) -> None:
        final: dict[str, float] = {}
        for split in ("dev", "test"):
            final.update(numeric_metrics(record.get(split) or {}, f"final/{split}"))
        if isinstance(record.get("best_epoch"), int):
            final["final/best_epoch"] = float(record["best_epoch"])
        self._call(f"finishing seed {record.get('seed')}", "finish_seed", final, str(record.get("status")))


def start_tracking(
    report_to: Sequence[str], run_tracking: RunTracking | None, run_folder: Path
) -> Tracking | None:
    """The run's tracking, or None when it reports nowhere."""
    if not report_to:
        return None
    check_available(report_to)
    return Tracking([BACKENDS[name]() for name in report_to], run_tracking or RunTracking(), run_folder)


def flat_params(config: Mapping[str, Any]) -> dict[str, str]:
    """The resolved config as string params; lists comma-joined, unset values as `None`."""
    params = {}
    for key, value in config.items():
        if isinstance(value, list | tuple):
            params[key] = ",".join(str(item) for item in value)
        else:
            params[key] = str(value)
    return params


def numeric_metrics(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a metrics dict (one level of nesting, e.g. per-label scores), as `prefix/key`."""
    values: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{_metric_key(str(key))}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            values[name] = float(value)
        elif isinstance(value, Mapping):
            for inner, number in value.items():
                if isinstance(number, int | float) and not isinstance(number, bool):
                    values[f"{name}/{_metric_key(str(inner))}"] = float(number)
    return values


def _metric_key(text: str) -> str:
    """MLflow keys take letters, digits, `_ - . /` and spaces; anything else becomes `_`."""
    return "".join(char if char.isalnum() or char in "_-. /" else "_" for char in text)


def group_learning_rates(param_groups: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each optimizer group's current lr, named by the group's `name`, else by the module its parameters
    share (`bert.encoder.layer.3` under layer-wise lr decay), with `.no_decay` for the groups without
    weight decay; `all` when the group spans the whole model."""
    rates: dict[str, float] = {}
    for index, group in enumerate(param_groups):
        name = group.get("name")
        if not name:
            name = _common_module(group.get("names") or []) or "all"
            if not group.get("weight_decay"):
                name += ".no_decay"
        name = _metric_key(str(name))
        if name in rates:
            name = f"{name}.{index}"
        rates[name] = float(group["lr"])
    return rates


def _common_module(parameter_names: Sequence[str]) -> str:
    if not parameter_names:
        return ""
    parts = [name.split(".")[:-1] for name in parameter_names]  # the module path, not the tensor's name
    common: list[str] = []
    for pieces in zip(*parts, strict=False):
        if any(piece != pieces[0] for piece in pieces):
            break
        common.append(pieces[0])
    return ".".join(common)


def _markdown_table(values: Mapping[str, str]) -> str:
    rows = [f"| {key} | {str(value).replace('|', '/')} |" for key, value in values.items()]
    return "\n".join(["| key | value |", "| --- | --- |", *rows])
