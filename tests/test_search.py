"""The recipe search (`search:` in a study) and `biotune recommend`.

Most tests replace training by a script (`run_training` patched: it reports the dev scores it is given to
the epoch hook, as the real loop does), so the sampler, the pruner, the score and resume are checked in
seconds with known numbers; the real loop on the tiny BERT is checked for pruning and, through the command
line, for `recommend` within a 60-second budget.
"""

from __future__ import annotations

import shlex
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import biotune.runs
from _run_files import real_results, seed_result, split
from biotune.cli import app
from biotune.config import TrainConfig
from biotune.errors import ConfigError
from biotune.report import write_report
from biotune.run_folder import Baselines, EpochRecord, RunResults
from biotune.study import RunStatus, StudyStore, run_study
from biotune.study.records import RunPruned
from biotune.study.search import SEARCH_STORE, counted_dev, recipe_score
from biotune.study.spec import parse_duration

TRIVIAL_DEV = 5.0
Script = Callable[[TrainConfig], tuple[list[float], str]]  # config -> (dev score per epoch, seed status)


def search_file(tmp_path: Path, tiny_bert: Path, shared_data: Path, **search: Any) -> Path:
    study = {
        "models": [str(tiny_bert)],
        "datasets": ["BIOSSES"],
        "seeds": search.pop("seeds", 2),
        "train": {
            "limit_train": 8,
            "max_length": 64,
            "batch_size": 8,
            "epochs": search.pop("epochs", 1),
            "data_dir": str(shared_data),
            "device": "cpu",
        },
        "search": {"trials": 3, "pruner": "none", **search},
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def scripted(monkeypatch: pytest.MonkeyPatch, script: Script) -> list[tuple[TrainConfig, int]]:
    """Training replaced by `script`; returns (config, epochs it got through) per run trained."""
    calls: list[tuple[TrainConfig, int]] = []

    def run_training(
        config: TrainConfig, output_dir: Path, progress: bool = False, on_epoch: Any = None, **_: Any
    ) -> RunResults:
        scores, status = script(config)
        seed = config.seeds[0]
        calls.append((config, 0))
        history = []
        for epoch, score in enumerate(scores, start=1):
            history.append({"epoch": epoch, "train_loss": 0.5, "dev": score})
            calls[-1] = (config, epoch)
            if on_epoch is not None:
                on_epoch(seed, epoch, 0.5, score, [])  # may raise RunPruned, as in the real loop
        record = seed_result(
            seed,
            status=status,
            dev=max(scores),
            test=1.0,
            error=None if status == "ok" else "collapsed: no better than the trivial baseline",
            best_epoch=len(scores),
        ).model_copy(update={"train_seconds": 0.01, "history": [EpochRecord(**row) for row in history]})
        return real_results(
            dataset=config.dataset,
            config=config.model_dump(mode="json"),
            technique_label="+".join(config.techniques) or "standard",
            seeds=[record],
            baseline=Baselines(trivial={"dev": split(TRIVIAL_DEV), "test": split(0.0)}),
        )

    monkeypatch.setattr(biotune.runs, "run_training", run_training)
    return calls


def optuna_trials(study_dir: Path, name_part: str = "BIOSSES") -> list[Any]:
    import optuna

    storage = f"sqlite:///{study_dir / SEARCH_STORE}"
    (summary,) = [s for s in optuna.get_all_study_summaries(storage) if name_part in s.study_name]
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def stored(study_dir: Path) -> dict[str, Any]:
    with StudyStore(study_dir, read_only=True) as store:
        return {record.run_id: record for record in store.runs()}


# --- the score, the store, the pruner ----------------------------------------------------------------


def test_every_trial_is_in_the_store_and_its_value_is_the_mean_over_seeds_minus_their_std(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def script(config: TrainConfig) -> tuple[list[float], str]:
        seed = config.seeds[0]
        if seed == 2 and config.techniques and config.techniques[0].startswith("freeze"):
            return [1.0], "failed"  # counts as the trivial baseline's dev score
        return [60.0 + 10.0 * seed + 1e5 * config.learning_rate], "ok"

    calls = scripted(monkeypatch, script)
    path = search_file(tmp_path, tiny_bert, shared_data, seeds=3, trials=4)
    result = run_study(path, tmp_path / "out")

    runs = stored(tmp_path / "out")
    trials = optuna_trials(tmp_path / "out")
    assert len(trials) == 4 and len(runs) == len(calls) == 12  # 4 trials x 3 seeds, each run once
    assert {run_id for t in trials for run_id in t.user_attrs["run_ids"]} == set(runs)
    for trial in trials:
        records = [runs[run_id] for run_id in trial.user_attrs["run_ids"]]
        assert [r.seed for r in records] == [0, 1, 2]
        assert {r.technique for r in records} == {trial.user_attrs["technique"]}
        assert all(r.config["learning_rate"] == trial.params["learning_rate"] for r in records)
        by_hand = [r.dev_score if r.status == RunStatus.DONE else TRIVIAL_DEV for r in records]
        assert trial.value == pytest.approx(statistics.fmean(by_hand) - statistics.stdev(by_hand))
    (summary,) = result.searches
    assert summary.best is not None and summary.best.score == max(t.value for t in trials)
    assert summary.counts == {"complete": 4} and summary.stopped == "trials"
    assert f"--learning-rate {summary.best.learning_rate!r}" in (summary.command or "")


@pytest.mark.parametrize(("seeds", "flag"), [([0], "1"), ([0, 1, 2], "3"), ([5], "5,"), ([1, 5, 7], "1,5,7")])
def test_the_printed_seeds_flag_reads_back_as_the_same_seeds(seeds: list[int], flag: str) -> None:
    from biotune.config import parse_seeds
    from biotune.study.search import seeds_flag

    assert seeds_flag(seeds) == flag and parse_seeds(flag) == seeds


def test_recipe_score_charges_the_spread_and_a_failed_seed_counts_as_the_trivial_baseline() -> None:
    assert recipe_score([80.0, 70.0, 60.0]) == (70.0, 10.0, 60.0)
    assert recipe_score([75.0]) == (75.0, 0.0, 75.0)  # one seed: no spread to charge
    stable, lucky = recipe_score([70.0, 70.0, 70.0]), recipe_score([90.0, 50.0, 70.0])
    assert stable[0] == lucky[0] and stable[2] > lucky[2]


def test_median_pruning_stops_a_worse_trial_after_its_epoch_and_records_it_pruned(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_recipe: list[tuple[float, tuple[str, ...]]] = []

    def script(config: TrainConfig) -> tuple[list[float], str]:
        recipe = (config.learning_rate or 0.0, tuple(config.techniques))
        first_recipe[:] = first_recipe or [recipe]
        return ([50.0, 60.0, 70.0] if recipe == first_recipe[0] else [10.0, 11.0, 12.0]), "ok"

    calls = scripted(monkeypatch, script)
    path = search_file(
        tmp_path,
        tiny_bert,
        shared_data,
        trials=3,
        epochs=3,
        pruner="median",
        startup_trials=1,
        warmup_epochs=0,
    )
    result = run_study(path, tmp_path / "out")

    first, *others = optuna_trials(tmp_path / "out")
    assert first.state.name == "COMPLETE" and [t.state.name for t in others] == ["PRUNED", "PRUNED"]
    runs = stored(tmp_path / "out")
    for trial in others:
        (run_id,) = trial.user_attrs["run_ids"]  # pruned in its first seed: the second never ran
        record = runs[run_id]
        assert record.status == RunStatus.PRUNED and not record.crashed
        assert record.metrics["history"] == [{"epoch": 1, "train_loss": 0.5, "dev": 10.0}]
        assert record.metrics["pruned_after_epoch"] == 1 and "pruned" in (record.error or "")
    assert [epochs for _, epochs in calls] == [3, 3, 1, 1]  # stopped right after the epoch it lost in
    assert result.counts[RunStatus.PRUNED] == 2 and result.counts[RunStatus.DONE] == 2
    assert result.searches[0].counts == {"complete": 1, "pruned": 2}

    report = write_report(tmp_path / "out").markdown.read_text(encoding="utf-8")
    assert "2 pruned by the recipe search" in report


def test_real_training_stops_at_the_pruned_epoch_and_the_run_is_recorded_pruned(
    tmp_path: Path, tiny_bert: Path, shared_data: Path
) -> None:
    # the threshold pruner with an unreachable score prunes at the first epoch past the warmup, every time
    path = search_file(
        tmp_path,
        tiny_bert,
        shared_data,
        trials=1,
        epochs=3,
        pruner="threshold",
        threshold=1000.0,
        warmup_epochs=1,
    )
    result = run_study(path, tmp_path / "out")

    (trial,) = optuna_trials(tmp_path / "out")
    assert trial.state.name == "PRUNED" and sorted(trial.intermediate_values) == [1, 2]
    (record,) = stored(tmp_path / "out").values()
    assert record.status == RunStatus.PRUNED and record.metrics["pruned_after_epoch"] == 2
    assert [row["epoch"] for row in record.metrics["history"]] == [1, 2]  # epoch 3 never trained
    log = (tmp_path / "out" / record.run_dir / "train.log").read_text(encoding="utf-8")
    assert "epoch 1/3" in log and "epoch 3/3" not in log
    assert result.searches[0].best is None and result.searches[0].counts == {"pruned": 1}
    write_report(tmp_path / "out")  # a study with only a pruned run still has a report


def test_the_pruning_exception_is_control_flow_not_an_error() -> None:
    stop = RunPruned(2, 41.5, [{"epoch": 1, "dev": 40.0}, {"epoch": 2, "dev": 41.5}])
    assert not isinstance(stop, ConfigError) and "after epoch 2" in str(stop)


# --- resume -------------------------------------------------------------------------------------------


def test_a_finished_search_resumes_to_more_trials_and_keeps_its_runs(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = scripted(monkeypatch, lambda config: ([50.0 + config.seeds[0]], "ok"))
    path = search_file(tmp_path, tiny_bert, shared_data, trials=2)
    run_study(path, tmp_path / "out")
    assert len(calls) == 4
    again = run_study(path, tmp_path / "out")
    assert len(calls) == 4 and len(again.searches[0].trials) == 2  # nothing left to do

    path = search_file(tmp_path, tiny_bert, shared_data, trials=3)  # a larger budget of trials
    more = run_study(path, tmp_path / "out")
    assert len(calls) == 6 and [t.number for t in more.searches[0].trials] == [0, 1, 2]
    assert len(stored(tmp_path / "out")) == 6


def test_a_trial_interrupted_by_ctrl_c_is_run_again_reusing_its_finished_seeds(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupting(config: TrainConfig) -> tuple[list[float], str]:
        if config.seeds[0] == 1:
            raise KeyboardInterrupt
        return [55.0], "ok"

    scripted(monkeypatch, interrupting)
    path = search_file(tmp_path, tiny_bert, shared_data, trials=1)
    with pytest.raises(KeyboardInterrupt):
        run_study(path, tmp_path / "out")
    statuses = sorted(r.status for r in stored(tmp_path / "out").values())
    assert statuses == [RunStatus.DONE, RunStatus.QUEUED]  # the run in flight went back to the queue

    calls = scripted(monkeypatch, lambda config: ([55.0 + 10 * config.seeds[0]], "ok"))
    result = run_study(path, tmp_path / "out")
    stale, rerun = optuna_trials(tmp_path / "out")
    assert stale.state.name == "FAIL" and "error" not in stale.user_attrs  # interrupted: does not count
    assert rerun.state.name == "COMPLETE" and rerun.params == stale.params
    assert [config.seeds for config, _ in calls] == [[1]]  # seed 0 was reused from the store
    assert rerun.value == pytest.approx(60.0 - statistics.stdev([55.0, 65.0]))
    assert [t.state for t in result.searches[0].trials] == ["interrupted", "complete"]


def test_the_budget_stops_a_trial_between_seeds_and_the_next_session_finishes_it(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(config: TrainConfig) -> tuple[list[float], str]:
        time.sleep(1.5)  # a 2-second budget: after the first seed, the mean seed time says another won't fit
        return [50.0 + 10 * config.seeds[0]], "ok"

    calls = scripted(monkeypatch, slow)
    path = search_file(tmp_path, tiny_bert, shared_data, trials=1, timeout="2s")
    (summary,) = run_study(path, tmp_path / "out").searches
    assert summary.stopped == "budget" and [t.state for t in summary.trials] == ["interrupted"]
    assert [config.seeds for config, _ in calls] == [[0]]
    assert [r.status for r in stored(tmp_path / "out").values()] == [RunStatus.DONE]  # seed 1 never queued

    path = search_file(tmp_path, tiny_bert, shared_data, trials=1)  # no budget this time: same search
    (summary,) = run_study(path, tmp_path / "out").searches
    assert [config.seeds for config, _ in calls] == [[0], [1]]  # seed 0 kept, only seed 1 trained
    assert [t.state for t in summary.trials] == ["interrupted", "complete"]
    assert summary.best is not None and summary.best.mean == 55.0 and summary.stopped == "trials"


def test_a_search_with_other_settings_in_the_folder_is_refused_unless_starting_over(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = scripted(monkeypatch, lambda config: ([50.0], "ok"))
    run_study(search_file(tmp_path, tiny_bert, shared_data, trials=1), tmp_path / "out")
    changed = search_file(tmp_path, tiny_bert, shared_data, trials=1, learning_rate=[2e-5, 3e-5])
    with pytest.raises(ConfigError, match="other settings.*--no-resume"):
        run_study(changed, tmp_path / "out")
    run_study(changed, tmp_path / "out", resume=False)
    assert len(calls) == 4 and len(stored(tmp_path / "out")) == 2
    (trial,) = optuna_trials(tmp_path / "out")
    assert 2e-5 <= trial.params["learning_rate"] <= 3e-5


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"techniques": ["standard", "llrd:0.9"]}, "a search samples the technique"),
        ({"hyperparameters": {"learning_rate": [1e-5]}}, "a search samples the learning rate"),
        ({"train": {"learning_rate": 3e-5}}, "train.learning_rate: a search samples"),
        ({"search": {"sampler": "grid"}}, "search.sampler"),
        ({"search": {"trials": 0}}, "search.trials"),
        ({"search": {"colour": "blue"}}, "search.colour: unknown key"),
        ({"search": {"pruner": "threshold"}}, "needs `threshold:`"),
        ({"search": {"threshold": 10.0}}, "threshold is for pruner threshold"),
        ({"search": {"learning_rate": [1e-4, 1e-5]}}, "0 < low <= high"),
        ({"search": {"techniques": {"freeze": [3, 1]}}}, "freeze: give \\[low, high\\]"),
        ({"search": {"techniques": {"freeze": [0.5, 2]}}}, "K is a whole number"),
        ({"search": {"techniques": {"llrd": [0.5, 1.5]}}}, "llrd:D needs 0 < D <= 1"),
        ({"search": {"techniques": {"mixout": [0.125, 0.5]}}}, "steps of 0.01"),
        ({"search": {"techniques": {"standard": [1, 2]}}}, "standard has no parameter"),
        ({"search": {"techniques": {"dropout": [0.1, 0.2]}}}, "search.techniques.dropout"),
        ({"search": {"techniques": []}}, "at least one technique family"),
        ({"search": {"timeout": "soon"}}, "a duration is like 90s, 30m"),
        ({"search": {"techniques": {"freeze": [0, 5]}}}, "freeze:5 asks for more layers than the model has"),
    ],
)
def test_a_bad_search_is_one_clear_error_before_any_work(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, change: dict[str, Any], message: str
) -> None:
    study = yaml.safe_load(search_file(tmp_path, tiny_bert, shared_data).read_text(encoding="utf-8"))
    for key, value in change.items():
        study[key] = {**study[key], **value} if key in ("search", "train") else value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        run_study(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_search_refuses_the_ray_runner_and_retry_failed(
    tmp_path: Path, tiny_bert: Path, shared_data: Path
) -> None:
    path = search_file(tmp_path, tiny_bert, shared_data)
    with pytest.raises(ConfigError, match="use --runner local"):
        run_study(path, tmp_path / "out", runner="ray")
    with pytest.raises(ConfigError, match="--retry-failed is for grids"):
        run_study(path, tmp_path / "out", retry_failed=True)


def test_without_optuna_a_search_fails_up_front_with_the_install_command(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'biotune\[search\]'"):
        run_study(search_file(tmp_path, tiny_bert, shared_data), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5m", 90), (45, 45)]
)
def test_durations_read_as_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "m", "0s", "-5", "1h-30m"])
def test_a_bad_duration_says_which_forms_work(text: str) -> None:
    with pytest.raises(ValueError, match="90s, 30m, 2h or 1h30m"):
        parse_duration(text)


def test_recommend_names_a_bad_budget_as_its_option() -> None:
    from biotune.study.search import recommend

    with pytest.raises(ConfigError, match="--budget: a duration is like"):
        recommend("BIOSSES", budget="half an hour")


# --- the store keeps older studies ------------------------------------------------------------------


def test_a_version_1_store_is_migrated_to_take_pruned_runs_and_keeps_its_rows(tmp_path: Path) -> None:
    from biotune.study.records import RunOutcome
    from biotune.study.store import _COLUMNS, _RUNS_COLUMNS_SQL, STORE_FILE

    with StudyStore(tmp_path) as store:  # a current store, turned back into version 1 below
        pass
    db = sqlite3.connect(tmp_path / STORE_FILE)
    current = f"CREATE TABLE runs {_RUNS_COLUMNS_SQL};"
    version_1 = current.replace("'failed', 'pruned'", "'failed'")  # 1 had no pruned
    assert version_1 != current
    db.executescript(
        f"DROP TABLE runs; {version_1} UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    identity = ("a1", 0, "m", "BIOSSES", "standard", "[]", "{}", 0, "{}")
    state = ("running", None, None, "{}", None, 0, 1.0, 2.0, None, None, 1, "w", "runs/a1")
    insert = f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 22)})"
    with pytest.raises(sqlite3.IntegrityError):  # what version 1 refused
        db.execute(insert, (*identity, "pruned", *state[1:]))
    db.execute(insert, (*identity, *state))
    db.commit()
    db.close()

    with StudyStore(tmp_path) as store:
        assert store.get_meta("schema_version") == "2"
        store.finish(RunOutcome("a1", RunStatus.PRUNED, 40.0, None, {"history": []}, "pruned"))
        record = store.get("a1")
    assert record.status == RunStatus.PRUNED and record.finished and record.worker == "w"


# --- recommend on the command line ------------------------------------------------------------------


def test_recommend_searches_within_a_60_second_budget_and_prints_the_recipe_and_its_evidence(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rec"
    # one seed a trial: the first trial always completes (its seed starts with no time estimate), even on a
    # machine so busy that a seed takes most of the budget; mean - std over seeds is checked above
    arguments = ["recommend", "BIOSSES", "--model", str(tiny_bert), "--budget", "60s", "--seeds", "1"]
    arguments += ["--epochs", "1", "--batch-size", "8", "--limit-train", "8", "--max-length", "64"]
    arguments += ["--data-dir", str(shared_data), "--device", "cpu", "--output", str(out)]
    started = time.monotonic()
    result = CliRunner().invoke(app, arguments)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert (
        "recipe for BIOSSES" in output and "evidence: dev seed 0" in output and "score (mean − std)" in output
    )

    runs = stored(out)
    trials = optuna_trials(out)
    assert trials and {run_id for t in trials for run_id in t.user_attrs["run_ids"]} == set(runs)
    # the budget counts from the first trial: every seed started within it (times from the store, so a slow
    # start-up on a busy machine does not count); the last one may end past it by at most its own length
    first_start = min(r.started_at or 0.0 for r in runs.values())
    assert all((r.started_at or 0.0) - first_start < 60 for r in runs.values())
    assert elapsed < 60 + max(r.seconds or 0.0 for r in runs.values()) + 120  # start-up and printing
    for trial in trials:
        if trial.state.name == "COMPLETE":
            counted = [counted_dev(runs[run_id]) for run_id in trial.user_attrs["run_ids"]]
            assert trial.value == pytest.approx(recipe_score([c for c in counted if c is not None])[2])

    # the printed command trains exactly the recipe with the search's options
    command = output.split("train it: ", 1)[1].strip()  # the last line
    captured: list[TrainConfig] = []

    class Captured(Exception):
        pass

    def capture(config: TrainConfig, *args: object, **kwargs: object) -> None:
        captured.append(config)
        raise Captured

    monkeypatch.setattr(biotune.runs, "run_training", capture)
    parts = shlex.split(command)
    assert parts[:2] == ["biotune", "train"]
    assert isinstance(CliRunner().invoke(app, parts[1:]).exception, Captured)
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: (t.value, -t.number))
    recipe = runs[best.user_attrs["run_ids"][0]].config
    trained = captured[0].model_dump(mode="json")
    for key in ("model", "dataset", "techniques", "learning_rate", "epochs", "batch_size", "max_length"):
        assert trained[key] == recipe[key], key
    assert trained["seeds"] == [0]


def test_a_dry_run_of_a_search_validates_it_and_estimates_every_trial_trained_to_the_end(
    tmp_path: Path, tiny_bert: Path, shared_data: Path
) -> None:
    path = search_file(tmp_path, tiny_bert, shared_data, trials=5)
    shown = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--tokens-per-second", "10000"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "a recipe search, 5 trials per model x dataset" in text and "10 runs" in text


def test_the_example_search_is_a_valid_study() -> None:
    from biotune.study import load_study

    study = load_study(Path(__file__).resolve().parents[1] / "examples" / "search.yaml")
    assert study.search is not None and study.search.timeout == 3600 and len(study.search.techniques) == 5
