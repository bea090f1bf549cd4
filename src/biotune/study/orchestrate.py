"""Run a study: validate the whole grid, register it in the store, run what is left, record each result.

Resuming is simply running again: done and failed runs are results and are kept; runs that were
queued or left `running` by a process that died run again. One process drives a study folder at a
time (a lock file), so any `running` row found at start belongs to a dead process.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biotune.config import dump_yaml
from biotune.errors import ConfigError
from biotune.safety import safe_child
from biotune.study.grid import RunSpec, expand_grid, setting_text
from biotune.study.records import RunOutcome, RunRecord, RunStatus, best_dev_run
from biotune.study.runners import (
    RunCallbacks,
    Runner,
    RunTask,
    disk_full_stops,
    make_runner,
    worker_name,
)
from biotune.study.spec import StudyConfig, load_study
from biotune.study.store import StudyStore
from biotune.study.validate import check_runs
from biotune.tracking import RunTracking, check_available, parse_report_to

if TYPE_CHECKING:
    from biotune.study.search import SearchSummary, TrialSummary

LOCK_FILE = ".study.lock"
STUDY_COPY = "study.yaml"


class StudyProgress:
    """Hooks for a front end to show progress; the defaults do nothing."""

    def planned(self, total: int, to_run: int, warnings: list[str]) -> None:
        """Before the first run: runs in the grid, runs left to do, up-front warnings."""

    def run_started(self, record: RunRecord) -> None:
        """A run was handed to the runner."""

    def run_finished(self, record: RunRecord) -> None:
        """A run's result is in the store (`record` is the stored row)."""

    def search_planned(self, searches: int, trials: int, warnings: list[str]) -> None:
        """Before a search's first trial: model x dataset searches, trials each, up-front warnings."""

    def search_started(self, model: str, dataset: str, ended: int, trials: int) -> None:
        """A search of one model x dataset begins (`ended` of its `trials` trials ended before)."""

    def trial_finished(self, trial: TrialSummary) -> None:
        """A search's trial ended (complete, pruned or failed)."""


@dataclass
class StudyResult:
    study_dir: Path
    total: int
    ran: list[str] = field(default_factory=list)
    counts: dict[RunStatus, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    searches: list[SearchSummary] = field(default_factory=list)  # a `search:` study: one per model x dataset


def default_output(study_file: Path) -> Path:
    return Path("runs") / Path(study_file).stem


def describe(run: RunSpec | RunRecord) -> str:
    setting = setting_text(run.hyperparameters)
    return f"{run.model} / {run.dataset} / {run.technique} / {setting} / seed {run.seed}"


def portable(config: dict[str, Any]) -> dict[str, Any]:
    """Local paths made absolute, so a worker whose working folder differs (Ray) finds the same files."""
    config = dict(config)
    if config.get("data_dir"):
        config["data_dir"] = str(Path(config["data_dir"]).resolve())
    from biotune.models import MODEL_ALIASES

    model = Path(config["model"]).expanduser()
    if config["model"].lower() not in MODEL_ALIASES and model.exists():  # an alias wins over a folder
        config["model"] = str(model.resolve())
    return config


@contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the study folder; the OS drops it when the process dies (even kill -9)."""
    import fcntl

    study_dir.mkdir(parents=True, exist_ok=True)
    with (study_dir / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"{study_dir}: another `biotune study` ({holder}) is running this study; wait for it "
                "or use another --output folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def plan_study(study: StudyConfig, source: str) -> tuple[list[RunSpec], list[str]]:
    """Every run, validated; raises one ConfigError before anything starts. Returns runs and warnings."""
    runs = expand_grid(study, source)
    return runs, check_runs(runs)


def run_study(
    study_file: Path,
    output: Path | None = None,
    *,
    resume: bool = True,
    retry_failed: bool = False,
    runner: Runner | str = "local",
    progress: StudyProgress | None = None,
    report_to: list[str] | None = None,
) -> StudyResult:
    """`report_to` (given: replaces `train.report_to`) logs every run to TensorBoard/MLflow, under one
    MLflow experiment named after the study folder."""
    study_file = Path(study_file)
    study = load_study(study_file)
    study_dir = Path(output) if output is not None else default_output(study_file)
    report_to = checked_report_to(report_to)
    if study.search is not None:
        from biotune.study.search import run_search

        if retry_failed:
            raise ConfigError(
                f"{study_file}: --retry-failed is for grids; a search's failed trials are part of its result"
            )
        return run_search(
            study,
            study_dir,
            str(study_file),
            resume=resume,
            runner=runner,
            progress=progress,
            report_to=report_to,
        )
    runs, warnings = plan_study(study, str(study_file))
    experiment = study_dir.resolve().name
    chosen = make_runner(runner) if isinstance(runner, str) else runner
    progress = progress or StudyProgress()
    # a full disk outside a run (the study copy, the lock file) stops the study with one clear message
    with disk_full_stops(study_dir), study_lock(study_dir), StudyStore(study_dir) as store:
        if resume:
            _check_same_study(store, runs, study_dir)
        else:
            start_over(store, study_dir)
        dump_yaml(study, study_dir / STUDY_COPY)
        store.set_meta("study_file", str(study_file.resolve()))
        store.add_runs(runs)
        store.requeue_interrupted()
        if retry_failed:
            store.requeue_failed()
        queued = store.runs(RunStatus.QUEUED)
        planned = {run.run_id: list(run.config.report_to) for run in runs}
        result = StudyResult(study_dir=study_dir, total=len(runs), warnings=warnings)
        progress.planned(len(runs), len(queued), warnings)
        tasks = [
            # tracking as the study says now (the store keeps a run's config from when it was queued)
            run_task(
                r,
                {**r.config, "report_to": report_to if report_to is not None else planned[r.run_id]},
                study_dir,
                experiment,
            )
            for r in queued
        ]
        if tasks:  # nothing left: do not start a Ray cluster for it
            chosen.run(tasks, run_callbacks(store, progress, result, chosen, study_dir, study.keep_models))
        result.counts = store.counts()
    return result


def checked_report_to(report_to: list[str] | None) -> list[str] | None:
    """`--report-to` parsed and its packages checked, before any work; None: as each run's config says."""
    if report_to is None:
        return None
    try:
        names = parse_report_to(report_to)
    except ValueError as exc:
        raise ConfigError(f"--report-to: {exc}") from exc
    check_available(names)
    return names


def start_over(store: StudyStore, study_dir: Path) -> None:
    """--no-resume: forget every stored run and delete its folder."""
    # a copied or edited store is untrusted: refuse a folder outside the study before deleting any
    folders = [safe_child(study_dir, r.run_dir, "run folder in the store") for r in store.runs()]
    store.delete_all()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def run_task(record: RunRecord, config: dict[str, Any], study_dir: Path, experiment: str) -> RunTask:
    """What a worker needs for one stored run (`config`: the run's config as it should run now)."""
    return RunTask(
        record.run_id,
        portable(config),
        str(safe_child(study_dir, record.run_dir, "run folder in the store").resolve()),
        describe(record),
        RunTracking(
            experiment, {"model": record.model, "dataset": record.dataset, "technique": record.technique}
        ),
    )


def setting_of(record: RunRecord) -> tuple[str, str, str, str]:
    """model x dataset x technique x hyper-parameters: the runs that differ only by seed."""
    return (record.model, record.dataset, record.technique, record.setting_key)


def prune_models(store: StudyStore, study_dir: Path, setting: tuple[str, str, str, str]) -> None:
    """Keep the saved model of the best-dev finished seed of this setting; delete its other seeds'.

    Within a setting the best only ever gets better as seeds finish, so a model deleted here is never
    needed again. Which setting is best overall can change until the last seed (a mean over seeds), so
    each setting keeps its own: the report names the best of them. A model saved per run would otherwise
    take the encoder's size times the number of runs.
    """
    finished = [r for r in store.runs() if r.finished and setting_of(r) == setting]
    best = best_dev_run(finished)
    for record in finished:
        if best is None or record.run_id != best.run_id:
            run_dir = safe_child(study_dir, record.run_dir, "run folder in the store")
            for folder in run_dir.glob("seed-*/model"):
                shutil.rmtree(folder, ignore_errors=True)


def run_callbacks(
    store: StudyStore,
    progress: StudyProgress,
    result: StudyResult,
    runner: Runner,
    study_dir: Path,
    keep_models: str,
) -> RunCallbacks:
    worker = worker_name() if runner.name == "local" else f"{runner.name} (driver {worker_name()})"

    def started(task: RunTask) -> None:
        store.mark_running(task.run_id, worker)
        progress.run_started(store.get(task.run_id))

    def finished(task: RunTask, outcome: RunOutcome) -> None:
        store.finish(outcome)
        result.ran.append(task.run_id)
        record = store.get(task.run_id)
        if keep_models == "best":
            prune_models(store, study_dir, setting_of(record))
        progress.run_finished(record)

    def interrupted(task: RunTask) -> None:
        store.requeue(task.run_id)

    return RunCallbacks(started, finished, interrupted)


def _check_same_study(store: StudyStore, runs: list[RunSpec], study_dir: Path) -> None:
    """Resume continues the same study (it may add runs); stored runs outside the grid mean another study."""
    planned = {run.run_id for run in runs}
    strangers = [record for record in store.runs() if record.run_id not in planned]
    if strangers:
        example = describe(strangers[0])
        raise ConfigError(
            f"{study_dir} holds {len(strangers)} run(s) that this study file does not define "
            f"(e.g. {example}); "
            "their settings differ (technique, hyper-parameters, train options or seeds changed or were "
            "removed). Use --no-resume to start this folder over, or --output for a new folder"
        )
