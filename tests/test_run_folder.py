"""The run folder's typed files: today's files (version 0) read, round trips keep every key, and a newer or
malformed file is one clear error naming the file and the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _run_files import FIXTURE_MODEL, FIXTURE_RUN, real_results, seed_result, split
from biotune.api import select_seed
from biotune.cli import app
from biotune.errors import ConfigError, DataError, RunFileError
from biotune.run_folder import (
    BIOTUNE_MODEL_FILE,
    RESULTS_FILE,
    SCHEMA_VERSION,
    SEED_METRICS_FILE,
    Baselines,
    RunResults,
    SeedMetricsFile,
    StoredRunMetrics,
    read_file,
    read_model_card,
    read_results,
    write_file,
)
from biotune.study.records import RunRecord, RunStatus


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_version_0_run_folder_reads_with_its_figures() -> None:
    results = read_results(FIXTURE_RUN)
    assert results.schema_version == 0 and SCHEMA_VERSION == 1
    assert (results.dataset, results.task_type, results.technique_label) == (
        "BIOSSES",
        "similarity",
        "freeze:3",
    )
    assert not results.own_files and results.device is not None and results.device.device == "cpu"
    seed = results.seeds[0]
    assert seed.ok and seed.seed == 1
    assert (seed.history[0].epoch, seed.history[0].train_loss) == (0, None)  # siamese: the untrained model
    assert seed.dev is not None and seed.dev.metric == "pearson" and seed.dev.n == 16
    assert set(seed.dev.model_extra or {}) == {"pearson", "spearman", "mse"}  # the metric's own figures
    assert seed.score("test") == pytest.approx(results.summary.mean)
    assert results.baseline.zero_shot_cosine is not None and results.featurization["train"].examples == 64
    card = read_model_card(FIXTURE_MODEL)
    assert (
        card.schema_version == 0 and card.pair_encoding == "siamese" and card.seed == 1 and card.onnx is None
    )
    metrics = read_file(FIXTURE_RUN / "seed-1" / SEED_METRICS_FILE, SeedMetricsFile)
    assert metrics.schema_version == 0 and metrics.test == seed.test


@pytest.mark.parametrize(
    "name", [RESULTS_FILE, f"seed-1/{SEED_METRICS_FILE}", f"seed-1/model/{BIOTUNE_MODEL_FILE}"]
)
def test_a_round_trip_writes_the_same_keys_and_values_plus_the_version(name: str, tmp_path: Path) -> None:
    model = {RESULTS_FILE: RunResults, SEED_METRICS_FILE: SeedMetricsFile}.get(Path(name).name)
    source = FIXTURE_RUN / name
    read = read_file(source, model) if model else read_model_card(source.parent)
    target = tmp_path / Path(name).name
    write_file(target, read)
    written = _json(target)
    assert written.pop("schema_version") == SCHEMA_VERSION
    assert written == _json(source)  # {} for a part that did not happen, keys left out where they apply
    again = read_file(target, type(read))
    assert again.schema_version == SCHEMA_VERSION and again.model_copy(update={"schema_version": 0}) == read
    assert not list(tmp_path.glob("*.tmp"))  # written atomically through a temporary file


def test_parts_that_do_not_apply_are_written_as_before(tmp_path: Path) -> None:
    # a failed seed that was never tested, on a task with no zero-shot baseline, on a CPU
    failed = seed_result(0, "failed", dev=1.0, test=None, error="collapsed: dev score 1.00")
    failed = failed.model_copy(update={"memory": None})
    results = real_results(seeds=[failed], baseline=Baselines(trivial={"dev": split(0.0)}))
    write_file(tmp_path / RESULTS_FILE, results)
    written = _json(tmp_path / RESULTS_FILE)
    assert written["seeds"][0]["test"] == {} and written["seeds"][0]["memory"] == {}
    assert "zero_shot_cosine" not in written["baseline"] and "peak_gpu_mb" not in json.dumps(written)
    assert "dataset" in written["seeds"][0]["dev"]  # a registry dataset's metrics say which dataset
    back = read_results(tmp_path)
    assert (
        back.seeds[0].test is None and back.seeds[0].memory is None and back.baseline.zero_shot_cosine is None
    )


def _edited(tmp_path: Path, edit: Any) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE_RUN, run)
    data = _json(run / RESULTS_FILE)
    edit(data)
    (run / RESULTS_FILE).write_text(json.dumps(data), encoding="utf-8")
    return run


def test_a_file_from_a_newer_biotune_is_refused_with_upgrade(tmp_path: Path) -> None:
    run = _edited(tmp_path, lambda data: data.update(schema_version=SCHEMA_VERSION + 1, calibration={"t": 1}))
    with pytest.raises(RunFileError) as caught:
        read_results(run)
    message = str(caught.value)
    assert str(run / RESULTS_FILE) in message and f"schema_version {SCHEMA_VERSION + 1}" in message
    assert "newer biotune" in message and "upgrade" in message
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, DataError)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda data: data["seeds"][0]["dev"].update(score="high"), "seeds.0.dev.score"),
        (lambda data: data.pop("summary"), "'summary' is missing"),
        (lambda data: data.update(calibration={"t": 1}), "unknown field 'calibration'"),
        (lambda data: data["seeds"][0].update(status="maybe"), "seeds.0.status"),
        (lambda data: data.update(schema_version="one"), "schema_version is 'one'"),
    ],
)
def test_a_malformed_file_is_one_error_naming_file_and_field(tmp_path: Path, edit: Any, field: str) -> None:
    run = _edited(tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        read_results(run)
    assert str(run / RESULTS_FILE) in str(caught.value) and field in str(caught.value)


def test_a_truncated_file_and_a_missing_one_say_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ConfigError, match="not a run folder"):
        read_results(run)
    (run / RESULTS_FILE).write_text('{"dataset": "GAD",\n "seeds": [', encoding="utf-8")
    with pytest.raises(RunFileError, match=rf"{RESULTS_FILE}:2: not valid JSON"):
        read_results(run)
    with pytest.raises(ConfigError, match="not a biotune model folder"):
        read_model_card(run)


def test_the_commands_read_version_0_folders_and_explain_newer_ones(tmp_path: Path) -> None:
    assert select_seed(FIXTURE_RUN, "1") == 1  # a version-0 run folder through the Python API
    scored = CliRunner().invoke(app, ["blurb", str(FIXTURE_RUN), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["per_dataset"]["BIOSSES"] == pytest.approx(real_results().summary.mean)
    newer = _edited(tmp_path, lambda data: data.update(schema_version=SCHEMA_VERSION + 1))
    refused = CliRunner().invoke(app, ["blurb", str(newer)])
    assert isinstance(refused.exception, RunFileError) and "upgrade" in str(refused.exception)


# -------------------------------------------------------------------------------- the study store's copy


def _record(metrics: dict[str, Any], run_dir: str = "runs/abc") -> RunRecord:
    return RunRecord(
        run_id="abc",
        position=0,
        model="minilm-l6",
        dataset="BIOSSES",
        technique="freeze:3",
        techniques=("freeze:3",),
        hyperparameters={},
        seed=1,
        config={},
        status=RunStatus.DONE,
        dev_score=None,
        test_score=None,
        metrics=metrics,
        error=None,
        crashed=False,
        queued_at=None,
        started_at=None,
        ended_at=None,
        seconds=None,
        attempts=1,
        worker=None,
        run_dir=run_dir,
    )


def test_the_store_keeps_the_run_figures_and_reads_them_back() -> None:
    results = real_results()
    stored = StoredRunMetrics.from_results(results, ("learning_rate", "epochs"))
    figures = _record(json.loads(json.dumps(stored.model_dump(mode="json")))).figures
    assert figures == stored and figures.resolved == {
        key: results.config[key] for key in ("learning_rate", "epochs")
    }
    assert figures.test == results.seeds[0].test and figures.device == results.device
    assert _record({}).figures == StoredRunMetrics()  # a run that raised stores nothing
    with pytest.raises(ConfigError, match=r"run abc \(runs/abc\): the study store's metrics .* at dev.score"):
        _ = _record({"dev": {"metric": "pearson", "score": "high", "n": 3}}).figures


def test_a_row_stored_before_the_figures_gets_them_from_its_run_folder(tmp_path: Path) -> None:
    from biotune.report.build import with_run_figures

    shutil.copytree(FIXTURE_RUN, tmp_path / "runs" / "abc")
    results = real_results()
    old_row = StoredRunMetrics.from_results(results, ()).model_dump(mode="json")
    for figure in ("throughput", "memory", "device", "featurization"):
        old_row.pop(figure)
    filled = with_run_figures(tmp_path, _record(old_row)).figures
    seed = results.seeds[0]
    assert (filled.throughput, filled.memory, filled.device) == (seed.throughput, seed.memory, results.device)
    assert filled.featurization == results.featurization and filled.test == seed.test
    no_folder = _record(old_row, run_dir="runs/gone")
    assert with_run_figures(tmp_path, no_folder) == no_folder
