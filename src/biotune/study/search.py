"""A recipe search (`search:` in a study, `biotune recommend`): Optuna samples lr x technique x its parameter.

One Optuna study per model x dataset, kept by Optuna's RDB storage in `search.sqlite` next to the study's
`study.sqlite` (Optuna alone touches that file); the samplers (TPE, random) and pruners (median,
threshold) are Optuna's own, driven through its ask-and-tell interface so that each trial's seeds run as
ordinary study runs:

- A trial samples a learning rate (log-uniform) and one technique family with its parameter (freeze K,
  llrd D, reinit K, mixout P; standard has none), then trains the study's seeds one after another. Each
  seed is one run of the study store, with its run folder, trained by the same `execute_run` as a grid's
  runs; the trial's Optuna record lists its runs (`run_ids`).
- After every epoch the seed's dev score goes to Optuna at step `seed_index * (epochs + 1) + epoch`, so a
  trial is compared with the others at the same seed and epoch (every seed can be pruned, not only the
  first). When the pruner says so, the epoch hook raises `RunPruned`: training stops cleanly, that run is
  stored as `pruned` and the trial as PRUNED; its remaining seeds are not run.
- A trial's value is the mean dev score of its seeds minus their sample std (n - 1; 0 for one seed), so a
  stable recipe beats a lucky one. Dev only: test never chooses. A seed judged failed (diverged, or no
  better than the trivial baseline) counts as the trivial baseline's dev score, so instability costs; a
  seed that raised (a bug, bad data) fails the trial, which says nothing about the recipe.
- Resume is running again: the trials and runs are kept, and the search goes on until `trials` trials
  have ended (pruned and failed ones count). A run the store already holds (same options, lr, technique
  and seed) is reused, not trained again. A trial left running by a process that died, or stopped by the
  budget between two seeds, is marked failed and `interrupted` (it does not count) and its parameters are
  queued again, so its finished seeds are reused. The sampler's seed is `seed` plus the trials so far,
  so a search is reproducible and a resumed one does not repeat its first proposals.
- The budget (`timeout`, per model x dataset): no trial starts that the mean seed time so far says would
  end after it, nor any seed; a seed in flight runs to its end.

Trials run in this process one after another (the `local` runner); the Ray runner is for grids.
"""

from __future__ import annotations

import json
import re
import shlex
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biotune.config import DEFAULT_MODEL, TrainConfig, build_config, dump_yaml
from biotune.data.registry import get_spec
from biotune.errors import ConfigError
from biotune.study.grid import NOT_IN_IDENTITY, RunSpec, expand_grid
from biotune.study.orchestrate import (
    STUDY_COPY,
    StudyProgress,
    StudyResult,
    run_callbacks,
    run_task,
    start_over,
    study_lock,
)
from biotune.study.records import FINISHED, RunPruned, RunRecord, RunStatus
from biotune.study.runners import LocalRunner, Runner, disk_full_stops, execute_run
from biotune.study.spec import (
    FLOAT_STEP,
    WHOLE_NUMBER_FAMILIES,
    SearchConfig,
    StudyConfig,
    parse_duration,
)
from biotune.study.store import StudyStore
from biotune.study.validate import check_runs

SEARCH_STORE = "search.sqlite"
INSTALL_HINT = "pip install 'biotune[search]'"
RECOMMEND_TRIALS = 200  # `recommend` is bounded by its budget; this only caps a very long one
# Optuna's trial states as this module names them; a failed trial without an `error` was interrupted
STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running"}


def import_optuna() -> Any:
    """Optuna, quiet (the search prints its own lines); a ConfigError with the install command without it."""
    try:
        import optuna
    except ImportError as exc:
        raise ConfigError(f"a recipe search needs Optuna: `{INSTALL_HINT}` (or drop `search:`)") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# --- the search space ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchSpace:
    """One model's space: the learning rate's bounds and each family's parameter bounds (None: standard)."""

    learning_rate: tuple[float, float]
    families: dict[str, tuple[float, float] | None]

    def as_json(self) -> dict[str, Any]:
        return {"learning_rate": list(self.learning_rate), "families": self.families}


def default_range(family: str, layers: int) -> tuple[float, float] | None:
    """Ranges the literature tries: freeze up to half the layers (0: the embeddings only), re-init the top
    quarter (at least one layer), LLRD 0.7-0.95 (Sun et al.), mixout 0.1-0.9 (Lee et al.)."""
    ranges: dict[str, tuple[float, float] | None] = {
        "standard": None,
        "freeze": (0, max(0, layers // 2)),
        "reinit": (1, max(1, layers // 4)),
        "llrd": (0.7, 0.95),
        "mixout": (0.1, 0.9),
    }
    return ranges[family]


def resolve_space(search: SearchConfig, layers: int) -> SearchSpace:
    """The space for a model of `layers` encoder layers: a family without bounds takes its default range."""
    families: dict[str, tuple[float, float] | None] = {}
    for family, bounds in search.techniques.items():
        families[family] = (bounds[0], bounds[1]) if bounds is not None else default_range(family, layers)
    low, high = search.learning_rate
    return SearchSpace((low, high), families)


def technique_text(family: str, value: float) -> str:
    return f"{family}:{int(value)}" if family in WHOLE_NUMBER_FAMILIES else f"{family}:{round(value, 2):g}"


def endpoint_techniques(space: SearchSpace) -> list[str]:
    """Every family at both ends of its range: validating these validates the whole space."""
    found = []
    for family, bounds in space.families.items():
        found += ["standard"] if bounds is None else [technique_text(family, value) for value in bounds]
    return list(dict.fromkeys(found))


def sample_recipe(trial: Any, space: SearchSpace) -> tuple[float, str]:
    """(learning rate, technique) from Optuna's trial: a conditional space, the parameter named by family."""
    learning_rate = trial.suggest_float("learning_rate", *space.learning_rate, log=True)
    family = trial.suggest_categorical("technique", list(space.families))
    bounds = space.families[family]
    if bounds is None:
        return learning_rate, "standard"
    low, high = bounds
    if family in WHOLE_NUMBER_FAMILIES:
        return learning_rate, technique_text(family, trial.suggest_int(family, int(low), int(high)))
    return learning_rate, technique_text(family, trial.suggest_float(family, low, high, step=FLOAT_STEP))


def recipe_score(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, sample std, mean - std) of a trial's dev scores; one seed has no spread to charge (std 0)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std, mean - std


def counted_dev(record: RunRecord) -> float | None:
    """What a finished seed adds to its trial: its dev score, or the trivial baseline's when judged failed."""
    if record.crashed or record.status not in (RunStatus.DONE, RunStatus.FAILED):
        return None
    if record.status == RunStatus.DONE:
        return record.dev_score
    baseline = record.figures.baseline
    trivial = baseline.trivial.get("dev") if baseline is not None else None
    return float(trivial.score) if trivial is not None else 0.0


# --- what a search hands back ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedEvidence:
    seed: int
    run_id: str
    status: str  # the stored run's status; `error` for a run that raised
    dev_score: float | None  # as stored
    counted: float | None  # what the trial's value counts (see counted_dev)


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str  # complete, pruned, failed, interrupted, running
    learning_rate: float | None
    technique: str | None
    seeds: tuple[SeedEvidence, ...]
    mean: float | None
    std: float | None
    score: float | None
    error: str | None = None


@dataclass(frozen=True)
class SearchSummary:
    """One model x dataset's search: every trial so far, the best one, and how to train its recipe."""

    model: str
    dataset: str
    trials: tuple[TrialSummary, ...]
    best: TrialSummary | None
    stopped: str  # why this session ended: `trials` (all done) or `budget`
    seconds: float  # this session's
    command: str | None  # `biotune train ...` for the best recipe with the study's options and seeds
    counts: dict[str, int] = field(default_factory=dict)  # trial state -> trials


# --- running a search --------------------------------------------------------------------------------


class PruningHook:
    """The `on_epoch` hook of one seed: report its dev score to the trial; stop the seed when told to."""

    def __init__(self, trial: Any, first_step: int) -> None:
        self.trial = trial
        self.first_step = first_step
        self.history: list[dict[str, Any]] = []

    def __call__(
        self, seed: int, epoch: int, train_loss: float | None, dev: float, groups: list[dict[str, Any]]
    ) -> None:
        self.history.append({"epoch": epoch, "train_loss": train_loss, "dev": dev})
        self.trial.report(dev, self.first_step + epoch)
        if self.trial.should_prune():
            raise RunPruned(epoch, dev, list(self.history))


@dataclass
class SearchPair:
    """One model x dataset of a search: what every trial of it shares."""

    model: str
    dataset: str  # canonical name
    options: dict[str, Any]
    seeds: list[int]
    space: SearchSpace
    epochs: int  # per seed, for the step numbers

    @property
    def name(self) -> str:
        return f"{self.model} | {self.dataset}"

    def settings(self, search: SearchConfig) -> str:
        """What defines this search's results; a resumed search must match it (budget and trials may grow)."""
        config = TrainConfig.model_validate(
            {**self.options, "model": self.model, "dataset": self.dataset, "seeds": self.seeds}
        )
        options = config.model_dump(mode="json", exclude_defaults=True, exclude=set(NOT_IN_IDENTITY))
        search_keys = search.model_dump(mode="json", exclude={"trials", "timeout", "techniques"})
        return json.dumps(
            {"options": options, "seeds": self.seeds, "space": self.space.as_json(), "search": search_keys},
            sort_keys=True,
        )


def plan_search(
    study: StudyConfig, source: str = "study"
) -> tuple[list[SearchPair], list[str], list[RunSpec]]:
    """Every model x dataset's search, validated before any work (options, models, data, the whole space).

    Returns the pairs, the warnings, and the runs of one trial per pair (standard, lowest lr), which a dry
    run multiplies by `trials` for its estimate."""
    from biotune.runs import num_encoder_layers

    assert study.search is not None
    representative = expand_grid(study, source)  # options, datasets and seeds checked as for a grid
    warnings = check_runs(representative)  # models readable, data present
    pairs: list[SearchPair] = []
    endpoints: list[RunSpec] = []
    for run in representative:
        if any(p.model == run.model and p.dataset == run.dataset for p in pairs):
            continue
        layers = num_encoder_layers(run.model, run.config.trust_remote_code)
        space = resolve_space(study.search, layers)
        options = study.options_for(next(d for d in study.datasets if get_spec(d).name == run.dataset))
        epochs = run.config.epochs or get_spec(run.dataset).defaults.epochs
        pairs.append(SearchPair(run.model, run.dataset, options, study.seeds_for(run.dataset), space, epochs))
        for technique in endpoint_techniques(space):
            techniques = [] if technique == "standard" else [technique]
            config = run.config.model_copy(update={"techniques": techniques})
            endpoints.append(RunSpec(0, run.model, run.dataset, technique, run.seed, config))
    try:
        check_runs(endpoints)  # each family at both ends of its range fits each model
    except ConfigError as exc:
        raise ConfigError(f"{source}: search.techniques: {exc}") from None
    return pairs, warnings, representative


def run_search(
    study: StudyConfig,
    study_dir: Path,
    source: str = "study",
    *,
    resume: bool = True,
    runner: Runner | str = "local",
    progress: StudyProgress | None = None,
    report_to: list[str] | None = None,
) -> StudyResult:
    """Run (or resume) a study's `search:`; `StudyResult.searches` has one summary per model x dataset."""
    assert study.search is not None, "a study without `search:` runs as a grid (run_study)"
    optuna = import_optuna()  # before any work
    if (runner if isinstance(runner, str) else runner.name) != "local":
        raise ConfigError(f"{source}: a search runs its trials in this process; use --runner local")
    pairs, warnings, _ = plan_search(study, source)
    progress = progress or StudyProgress()
    study_dir = Path(study_dir)
    result = StudyResult(study_dir=study_dir, total=0, warnings=warnings)
    with disk_full_stops(study_dir), study_lock(study_dir), StudyStore(study_dir) as store:
        if not resume:
            start_over(store, study_dir)
            for leftover in study_dir.glob(f"{SEARCH_STORE}*"):
                leftover.unlink()
        storage = optuna.storages.RDBStorage(f"sqlite:///{(study_dir / SEARCH_STORE).resolve()}")
        try:
            searches = [_open_search(optuna, storage, pair, study.search, source) for pair in pairs]
            _check_same_search(store, searches, study_dir)
            dump_yaml(study, study_dir / STUDY_COPY)
            store.requeue_interrupted()
            callbacks = run_callbacks(store, progress, result, LocalRunner(), study_dir, study.keep_models)
            session = _Session(optuna, store, study.search, study_dir, progress, callbacks, report_to)
            progress.search_planned(len(pairs), study.search.trials, warnings)
            for pair, optuna_study in zip(pairs, searches, strict=True):
                result.searches.append(session.run_pair(pair, optuna_study))
        finally:
            storage.engine.dispose()
        result.counts = store.counts()
        result.total = sum(result.counts.values())
    return result


def _open_search(optuna: Any, storage: Any, pair: SearchPair, search: SearchConfig, source: str) -> Any:
    """The pair's Optuna study, created or resumed, with a sampler seeded past the trials it has."""
    created = optuna.create_study(
        storage=storage, study_name=pair.name, direction="maximize", load_if_exists=True
    )
    settings = pair.settings(search)
    stored = created.user_attrs.get("settings")
    if stored is None:
        created.set_user_attr("settings", settings)
    elif stored != settings:
        raise ConfigError(
            f"{source}: the search for {pair.name} in this folder ran with other settings (options, seeds, "
            "search space, sampler or pruner changed); use --no-resume to start it over, or another --output"
        )
    seed = search.seed + len(created.trials)
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if search.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    warmup = search.warmup_epochs + 1  # steps below it are never pruned: epoch 0 (siamese) .. warmup_epochs
    if search.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials, n_warmup_steps=warmup)
    elif search.pruner == "threshold":
        pruner = optuna.pruners.ThresholdPruner(lower=search.threshold, n_warmup_steps=warmup)
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.load_study(study_name=pair.name, storage=storage, sampler=sampler, pruner=pruner)


def _check_same_search(store: StudyStore, searches: list[Any], study_dir: Path) -> None:
    """Stored runs that no trial of these searches lists belong to another study (a grid, other datasets)."""
    listed = {run_id for s in searches for t in s.get_trials(deepcopy=False) for run_id in _run_ids(t)}
    strangers = [r for r in store.runs() if r.run_id not in listed]
    if strangers:
        raise ConfigError(
            f"{study_dir} holds {len(strangers)} run(s) that this search does not define (e.g. "
            f"{strangers[0].model} / {strangers[0].dataset} / {strangers[0].technique}); use --no-resume to "
            "start this folder over, or --output for a new folder"
        )


def _run_ids(trial: Any) -> list[str]:
    return list(trial.user_attrs.get("run_ids") or [])


def _counts_toward_trials(trial: Any, states: Any) -> bool:
    if trial.state in (states.COMPLETE, states.PRUNED):
        return True
    return trial.state == states.FAIL and "error" in trial.user_attrs


class _Session:
    """This process's part of a search: runs trials of each pair until `trials` or the budget says stop."""

    def __init__(
        self,
        optuna: Any,
        store: StudyStore,
        search: SearchConfig,
        study_dir: Path,
        progress: StudyProgress,
        callbacks: Any,
        report_to: list[str] | None,
    ) -> None:
        self.states = optuna.trial.TrialState
        self.store = store
        self.config = search
        self.study_dir = study_dir
        self.progress = progress
        self.callbacks = callbacks
        self.report_to = report_to
        self.experiment = study_dir.resolve().name

    def run_pair(self, pair: SearchPair, optuna_study: Any) -> SearchSummary:
        started = time.monotonic()
        deadline = started + self.config.timeout if self.config.timeout else None
        for stale in optuna_study.get_trials(deepcopy=False, states=(self.states.RUNNING,)):
            # left running by a process that died (one process drives a folder): run its recipe again
            optuna_study.tell(stale.number, state=self.states.FAIL)
            optuna_study.enqueue_trial(stale.params)
        self.progress.search_started(pair.model, pair.dataset, self._ended(optuna_study), self.config.trials)
        stopped = "trials"
        while self._ended(optuna_study) < self.config.trials:
            queued = bool(optuna_study.get_trials(deepcopy=False, states=(self.states.WAITING,)))
            # a queued (interrupted) trial may have seeds done already: it needs at least one seed's time
            needed = 1 if queued else len(pair.seeds)
            if not self._fits(pair, deadline, needed):
                stopped = "budget"
                break
            if self._trial(pair, optuna_study, deadline) == "budget":
                stopped = "budget"
                break
            self.progress.trial_finished(summarize_trial(optuna_study.trials[-1], self.store))
        return summarize_search(
            pair, optuna_study, self.store, stopped, time.monotonic() - started, self.states
        )

    def _ended(self, optuna_study: Any) -> int:
        return sum(
            1 for t in optuna_study.get_trials(deepcopy=False) if _counts_toward_trials(t, self.states)
        )

    def _seed_seconds(self, pair: SearchPair) -> float | None:
        """Mean seconds of this pair's seeds that trained to the end (pruned ones stop early)."""
        seconds = [
            r.seconds
            for r in self.store.runs()
            if r.model == pair.model
            and r.dataset == pair.dataset
            and r.seconds is not None
            and r.status in (RunStatus.DONE, RunStatus.FAILED)
            and not r.crashed
        ]
        return statistics.fmean(seconds) if seconds else None

    def _fits(self, pair: SearchPair, deadline: float | None, seeds: int) -> bool:
        if deadline is None:
            return True
        now = time.monotonic()
        estimate = self._seed_seconds(pair)
        return now < deadline and (estimate is None or now + estimate * seeds <= deadline)

    def _trial(self, pair: SearchPair, optuna_study: Any, deadline: float | None) -> str:
        trial = optuna_study.ask()
        learning_rate, technique = sample_recipe(trial, pair.space)
        values = {
            **pair.options,
            "model": pair.model,
            "dataset": pair.dataset,
            "learning_rate": learning_rate,
            "techniques": [] if technique == "standard" else [technique],
        }
        trial.set_user_attr("technique", technique)
        run_ids: list[str] = []
        for index, seed in enumerate(pair.seeds):
            config = TrainConfig.model_validate({**values, "seeds": [seed]})
            position = max((r.position for r in self.store.runs()), default=-1) + 1
            spec = RunSpec(position, pair.model, pair.dataset, technique, seed, config)
            record = self._stored(spec.run_id)
            reused = record is not None and record.status in FINISHED  # the same run in an earlier trial
            if not reused and not self._fits(pair, deadline, 1):
                trial.set_user_attr("interrupted", "budget")
                optuna_study.tell(trial, state=self.states.FAIL)
                optuna_study.enqueue_trial(trial.params)  # the next session finishes it
                return "budget"
            run_ids.append(spec.run_id)
            trial.set_user_attr("run_ids", run_ids)  # before the store has it: a stored run is always listed
            if record is None:
                self.store.add_runs([spec])
                record = self.store.get(spec.run_id)
            first_step = index * (pair.epochs + 1)
            if reused:  # its evidence stands: the pruner sees its epochs as if it had trained now
                for row in record.figures.history:
                    trial.report(row.dev, first_step + row.epoch)
            else:
                record = self._train(record, PruningHook(trial, first_step))
            if record.status == RunStatus.PRUNED:
                optuna_study.tell(trial, state=self.states.PRUNED)
                return "pruned"
            if record.crashed:
                trial.set_user_attr("error", record.error or "the run raised an error")
                optuna_study.tell(trial, state=self.states.FAIL)
                return "failed"
        counted = [counted_dev(self.store.get(run_id)) for run_id in run_ids]
        mean, std, score = recipe_score([value for value in counted if value is not None])
        trial.set_user_attr("mean", mean)
        trial.set_user_attr("std", std)
        optuna_study.tell(trial, score)
        return "complete"

    def _stored(self, run_id: str) -> RunRecord | None:
        try:
            return self.store.get(run_id)
        except KeyError:
            return None

    def _train(self, record: RunRecord, hook: PruningHook) -> RunRecord:
        config = {**record.config}
        if self.report_to is not None:
            config["report_to"] = self.report_to
        task = run_task(record, config, self.study_dir, self.experiment)
        self.callbacks.started(task)
        try:
            outcome = execute_run(task, on_epoch=hook)
        except BaseException:  # Ctrl-C, a full disk: the run goes back to the queue, the trial stays running
            self.callbacks.interrupted(task)
            raise
        self.callbacks.finished(task, outcome)
        return self.store.get(record.run_id)


def summarize_trial(trial: Any, store: StudyStore) -> TrialSummary:
    """A trial as Optuna and the store keep it (the store's runs are the evidence)."""
    state = STATE_NAMES.get(trial.state.name, trial.state.name.lower())
    if state == "failed" and "error" not in trial.user_attrs:
        state = "interrupted"
    seeds = []
    for run_id in _run_ids(trial):
        try:
            record = store.get(run_id)
        except KeyError:  # listed just before a process died, never stored
            continue
        status = "error" if record.crashed else record.status.value
        seeds.append(SeedEvidence(record.seed, run_id, status, record.dev_score, counted_dev(record)))
    return TrialSummary(
        number=trial.number,
        state=state,
        learning_rate=trial.params.get("learning_rate"),
        technique=trial.user_attrs.get("technique"),
        seeds=tuple(seeds),
        mean=trial.user_attrs.get("mean"),
        std=trial.user_attrs.get("std"),
        score=trial.value if state == "complete" else None,
        error=trial.user_attrs.get("error"),
    )


def summarize_search(
    pair: SearchPair, optuna_study: Any, store: StudyStore, stopped: str, seconds: float, states: Any
) -> SearchSummary:
    trials = tuple(
        summarize_trial(t, store)
        for t in optuna_study.get_trials(deepcopy=False)
        if t.state != states.WAITING
    )
    complete = [t for t in trials if t.state == "complete" and t.score is not None]
    best = max(complete, key=lambda t: (t.score, -t.number)) if complete else None
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state] = counts.get(trial.state, 0) + 1
    command = None
    if best is not None and best.seeds:
        config = TrainConfig.model_validate(
            {**store.get(best.seeds[0].run_id).config, "seeds": pair.seeds, "output": None}
        )
        command = train_command(config)
    return SearchSummary(pair.model, pair.dataset, trials, best, stopped, seconds, command, counts)


# flags of `biotune train` whose names are not `--kebab-case` of the field (biotune.cli.cmd_train)
TRAIN_FLAG_OF = {"techniques": "--technique"}


def seeds_flag(seeds: list[int]) -> str:
    """`--seeds` as `biotune train` reads it: a count for 0..N-1, else a list (one seed: with a comma)."""
    if seeds == list(range(len(seeds))):
        return str(len(seeds))
    return ",".join(str(seed) for seed in seeds) + ("," if len(seeds) == 1 else "")


def train_command(config: TrainConfig) -> str:
    """The `biotune train` command line that trains `config` (its options that differ from the defaults)."""
    values = config.model_dump(mode="json", exclude_defaults=True, exclude={"output", "seeds"})
    parts = ["biotune", "train"]
    if values.get("dataset"):
        parts.append(str(values.pop("dataset")))
    parts += ["--seeds", seeds_flag(config.seeds)]
    for key, value in values.items():
        flag = TRAIN_FLAG_OF.get(key, "--" + key.replace("_", "-"))
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag.removeprefix("--"))
        elif isinstance(value, list):
            for item in value:
                parts += [flag, str(item)]
        else:
            parts += [flag, repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(parts)


# --- recommend -----------------------------------------------------------------------------------------


def default_recommend_output(dataset: str, model: str) -> Path:
    name = Path(model).name or model
    return Path("runs") / re.sub(r"[^A-Za-z0-9._-]+", "-", f"recommend-{dataset}-{name}")


def recommend(
    dataset: str,
    model: str = DEFAULT_MODEL,
    budget: str | float = "30m",
    *,
    seeds: int | list[int] = 3,
    output: Path | None = None,
    train: dict[str, Any] | None = None,
    trials: int = RECOMMEND_TRIALS,
    resume: bool = True,
    progress: StudyProgress | None = None,
) -> SearchSummary:
    """Search `dataset` x `model` within `budget` (`30m`, `2h`, `1h30m`, or seconds) with the default space;
    the summary holds the best recipe, its evidence and its `biotune train` command. `train` holds
    options every run shares (max_length, epochs, batch_size, data_dir, device, ...)."""
    try:
        seconds = parse_duration(budget)
    except ValueError as exc:
        raise ConfigError(f"--budget: {exc}") from None
    study = build_config(
        StudyConfig,
        {
            "models": [model],
            "datasets": [dataset],
            "seeds": seeds,
            "train": dict(train or {}),
            "search": {"trials": trials, "timeout": seconds},
        },
        "recommend",
    )
    folder = Path(output) if output is not None else default_recommend_output(dataset, model)
    result = run_search(study, folder, "recommend", resume=resume, progress=progress)
    return result.searches[0]
