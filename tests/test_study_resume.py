"""End to end with real training (tiny BERT, BIOSSES): kill -9 mid-study, resume, compare to a clean study."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from biotune.errors import ConfigError
from biotune.study import RunStatus, StudyStore, run_study

KILL_DEADLINE_S = 120


def write_study(
    path: Path, model: Path, data: Path, datasets: list[str], techniques: list[str], seeds: int
) -> Path:
    study = {
        "models": [str(model)],
        "datasets": datasets,
        "techniques": techniques,
        "seeds": seeds,
        "hyperparameters": {"epochs": [1], "batch_size": [8], "learning_rate": [1e-4]},
        "train": {"limit_train": 8, "max_length": 64, "data_dir": str(data), "device": "cpu"},
    }
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def poll_counts(study_dir: Path) -> dict[RunStatus, int] | None:
    try:
        with StudyStore(study_dir, read_only=True) as store:
            return store.counts()
    except (ConfigError, sqlite3.OperationalError):  # not created yet, or its schema not yet committed
        return None


def kill_when_one_is_done_and_one_running(
    command: list[str], study_dir: Path, log: Path
) -> dict[RunStatus, int]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + KILL_DEADLINE_S
        try:
            while time.monotonic() < deadline and process.poll() is None:
                counts = poll_counts(study_dir)
                finished = counts and counts[RunStatus.DONE] + counts[RunStatus.FAILED]
                if counts and finished and counts[RunStatus.RUNNING] == 1:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
                    return counts
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    pytest.fail(f"the study ended or stalled before it could be killed mid-run:\n{log.read_text()[-3000:]}")


def test_a_killed_study_resumes_to_the_same_results_as_an_uninterrupted_one(
    tmp_path: Path, tiny_bert: Path, shared_data: Path
) -> None:
    techniques = ["standard", "reinit:1", "freeze:1"]
    study_file = write_study(tmp_path / "kill.yaml", tiny_bert, shared_data, ["BIOSSES"], techniques, 1)
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    command = [sys.executable, "-m", "biotune", "study", str(study_file), "--output", str(killed_dir)]
    at_kill = kill_when_one_is_done_and_one_running(command, killed_dir, tmp_path / "killed.log")

    with StudyStore(killed_dir, read_only=True) as store:
        before = {r.run_id: r for r in store.runs()}
    (in_flight,) = [r for r in before.values() if r.status == RunStatus.RUNNING]
    kept = {i: r for i, r in before.items() if r.finished}
    assert len(before) == 3 and len(kept) == at_kill[RunStatus.DONE] + at_kill[RunStatus.FAILED]

    resumed = run_study(study_file, killed_dir)
    assert in_flight.run_id in resumed.ran and not set(resumed.ran) & set(kept)
    clean = run_study(study_file, clean_dir)
    assert len(clean.ran) == 3

    with StudyStore(killed_dir, read_only=True) as store:
        after = {r.run_id: r for r in store.runs()}
    with StudyStore(clean_dir, read_only=True) as store:
        reference = {r.run_id: r for r in store.runs()}
    assert set(after) == set(reference) == set(before)
    for run_id, record in after.items():
        expected = reference[run_id]
        assert record.finished and record.status == expected.status
        assert record.dev_score == pytest.approx(expected.dev_score, abs=1e-6), run_id
        assert record.test_score == pytest.approx(expected.test_score, abs=1e-6), run_id
        assert record.attempts == (2 if run_id == in_flight.run_id else 1)
        if run_id in kept:  # finished before the kill: untouched by the resume
            assert record.ended_at == kept[run_id].ended_at and record.metrics == kept[run_id].metrics
    folders = sorted(p.name for p in (killed_dir / "runs").iterdir())
    assert folders == sorted(after)
    for run_id in folders:
        results = json.loads((killed_dir / "runs" / run_id / "results.json").read_text(encoding="utf-8"))
        assert [seed["seed"] for seed in results["seeds"]] == [after[run_id].seed]

    again = run_study(study_file, killed_dir)
    assert again.ran == []


def test_a_run_that_raises_is_recorded_failed_and_the_study_goes_on(
    tmp_path: Path, tiny_bert: Path, shared_data: Path
) -> None:
    if (shared_data / "ebmnlp" / "train.tsv").exists():
        pytest.skip("this test relies on the EBM PICO train split being absent from the shared data")
    study_file = write_study(
        tmp_path / "mixed.yaml", tiny_bert, shared_data, ["ebmnlp", "BIOSSES"], ["standard"], 1
    )
    result = run_study(study_file, tmp_path / "mixed")
    assert len(result.ran) == 2
    with StudyStore(tmp_path / "mixed", read_only=True) as store:
        by_dataset = {r.dataset: r for r in store.runs()}
    broken, fine = by_dataset["ebmnlp"], by_dataset["BIOSSES"]
    assert broken.status == RunStatus.FAILED and broken.crashed
    assert "train split of ebmnlp is missing" in (broken.error or "")
    assert "Traceback" in (tmp_path / "mixed" / broken.run_dir / "error.txt").read_text(encoding="utf-8")
    assert fine.finished and not fine.crashed and fine.test_score is not None
    assert fine.metrics["test"]["score"] == fine.test_score
