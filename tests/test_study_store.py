"""The SQLite store: state transitions, resume semantics, parameters not SQL text, readers beside a writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from biotune.errors import ConfigError
from biotune.study import RunOutcome, RunStatus, StudyConfig, StudyStore, expand_grid
from biotune.study.grid import RunSpec
from biotune.study.store import StoreStateError

SRC = Path(__file__).resolve().parents[1] / "src"


def make_runs(models: list[str] | None = None, seeds: int = 2) -> list[RunSpec]:
    study = StudyConfig.model_validate(
        {
            "models": models or ["m"],
            "datasets": ["BIOSSES"],
            "techniques": ["standard", "reinit:1"],
            "seeds": seeds,
        }
    )
    return expand_grid(study)


def outcome(
    run_id: str,
    status: RunStatus = RunStatus.DONE,
    dev: float | None = 50.0,
    test: float | None = 40.0,
    **extra: object,
) -> RunOutcome:
    return RunOutcome(run_id, status, dev, test, {"dev": {"score": dev}, "test": {"score": test}}, **extra)


def test_new_runs_are_queued_in_grid_order_once(tmp_path: Path) -> None:
    runs = make_runs()
    with StudyStore(tmp_path) as store:
        assert store.add_runs(runs) == [r.run_id for r in runs]
        assert store.add_runs(runs) == []
        records = store.runs()
    assert [r.run_id for r in records] == [r.run_id for r in runs]
    first = records[0]
    assert first.status == RunStatus.QUEUED and first.attempts == 0 and first.queued_at is not None
    assert first.run_dir == f"runs/{first.run_id}"
    assert first.config["seeds"] == [first.seed] and first.techniques == ()
    assert records[-1].techniques == ("reinit:1",)
    assert first.hyperparameters == {"learning_rate": None, "batch_size": None, "epochs": None}


def test_a_run_goes_queued_running_done_and_keeps_its_result(tmp_path: Path) -> None:
    run = make_runs()[0]
    with StudyStore(tmp_path) as store:
        store.add_runs([run])
        store.mark_running(run.run_id, "host:1")
        running = store.get(run.run_id)
        assert running.status == RunStatus.RUNNING and running.attempts == 1 and running.worker == "host:1"
        store.finish(outcome(run.run_id, dev=61.5, test=58.25, started_at=100.0, ended_at=112.5))
        done = store.get(run.run_id)
    assert done.status == RunStatus.DONE
    assert (done.dev_score, done.test_score) == (61.5, 58.25)
    assert done.metrics == {"dev": {"score": 61.5}, "test": {"score": 58.25}}
    assert (done.started_at, done.ended_at, done.seconds) == (100.0, 112.5, 12.5)
    assert done.error is None and not done.crashed


def test_transitions_the_status_does_not_allow_are_refused(tmp_path: Path) -> None:
    first, second = make_runs()[:2]
    with StudyStore(tmp_path) as store:
        store.add_runs([first, second])
        with pytest.raises(StoreStateError, match="status is queued"):
            store.finish(outcome(first.run_id))
        store.mark_running(first.run_id, "w")
        with pytest.raises(StoreStateError, match="status is running"):
            store.mark_running(first.run_id, "w")
        with pytest.raises(StoreStateError, match="done or failed"):
            store.finish(outcome(first.run_id, status=RunStatus.QUEUED))
        store.finish(outcome(first.run_id))
        with pytest.raises(StoreStateError, match="status is done"):
            store.finish(outcome(first.run_id))
        with pytest.raises(StoreStateError, match="no such run"):
            store.mark_running("0123456789abcdef", "w")
        assert store.get(first.run_id).status == RunStatus.DONE
        assert store.get(second.run_id).status == RunStatus.QUEUED


def test_resume_requeues_interrupted_runs_and_keeps_done_and_failed(tmp_path: Path) -> None:
    done, failed, interrupted, queued = make_runs()
    with StudyStore(tmp_path) as store:
        store.add_runs([done, failed, interrupted, queued])
        for run in (done, failed, interrupted):
            store.mark_running(run.run_id, "old-process")
        store.finish(outcome(done.run_id))
        store.finish(outcome(failed.run_id, RunStatus.FAILED, dev=-3.0, test=1.0, error="collapsed"))
    with StudyStore(tmp_path) as store:  # a new process after a crash
        assert store.requeue_interrupted() == [interrupted.run_id]
        statuses = {r.run_id: r.status for r in store.runs()}
        again = store.get(interrupted.run_id)
        assert again.started_at is None and again.worker is None and again.attempts == 1
        assert store.get(failed.run_id).error == "collapsed"
        assert store.counts() == {
            RunStatus.QUEUED: 2,
            RunStatus.RUNNING: 0,
            RunStatus.DONE: 1,
            RunStatus.FAILED: 1,
            RunStatus.PRUNED: 0,
        }
        assert store.requeue_failed() == [failed.run_id]
        retried = store.get(failed.run_id)
    assert statuses == {
        done.run_id: RunStatus.DONE,
        failed.run_id: RunStatus.FAILED,
        interrupted.run_id: RunStatus.QUEUED,
        queued.run_id: RunStatus.QUEUED,
    }
    assert retried.status == RunStatus.QUEUED and retried.error is None and retried.dev_score is None


def test_interrupted_on_purpose_goes_back_to_the_queue(tmp_path: Path) -> None:
    run = make_runs()[0]
    with StudyStore(tmp_path) as store:
        store.add_runs([run])
        store.mark_running(run.run_id, "w")
        store.requeue(run.run_id)
        assert store.get(run.run_id).status == RunStatus.QUEUED
        store.mark_running(run.run_id, "w")
        assert store.get(run.run_id).attempts == 2


def test_values_travel_as_parameters_never_as_sql(tmp_path: Path) -> None:
    hostile = "m'); DROP TABLE runs; --"
    runs = make_runs(models=[hostile], seeds=1)
    error = 'bad "quote" \' and ; DELETE FROM runs; --'
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        store.mark_running(runs[0].run_id, "w'); --")
        store.finish(outcome(runs[0].run_id, RunStatus.FAILED, error=error, crashed=True))
        store.set_meta("note'; DROP TABLE meta; --", "x")
        records = store.runs()
        assert store.get_meta("note'; DROP TABLE meta; --") == "x"
    assert [r.model for r in records] == [hostile, hostile]
    assert records[0].error == error and records[0].worker == "w'); --" and records[0].crashed


def test_readers_see_the_last_commit_without_waiting_for_the_writer(tmp_path: Path) -> None:
    runs = make_runs(seeds=10)
    with StudyStore(tmp_path) as writer:
        writer.add_runs(runs)
        writer._db.execute("BEGIN IMMEDIATE")  # a writer in the middle of a transaction
        writer._db.execute("UPDATE runs SET status = 'running'")
        with StudyStore(tmp_path, read_only=True) as reader:
            started = time.monotonic()
            assert reader.counts()[RunStatus.QUEUED] == len(runs)
            assert time.monotonic() - started < 1.0
            writer._db.execute("ROLLBACK")

        errors: list[BaseException] = []
        seen_done: list[int] = []

        def read_while_writing() -> None:
            try:
                with StudyStore(tmp_path, read_only=True) as reader:
                    while len(seen_done) < 200:
                        counts = reader.counts()
                        assert sum(counts.values()) == len(runs)
                        seen_done.append(counts[RunStatus.DONE])
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)

        thread = threading.Thread(target=read_while_writing)
        thread.start()
        for run in runs:
            writer.mark_running(run.run_id, "w")
            writer.finish(outcome(run.run_id))
        thread.join(timeout=30)
    assert not errors
    assert seen_done == sorted(seen_done)  # a reader never sees a result disappear
    with StudyStore(tmp_path, read_only=True) as reader:
        assert reader.counts()[RunStatus.DONE] == len(runs)


def test_a_read_only_store_cannot_write_and_a_missing_one_is_a_clear_error(tmp_path: Path) -> None:
    with StudyStore(tmp_path / "study") as store:
        store.add_runs(make_runs())
    with StudyStore(tmp_path / "study", read_only=True) as reader, pytest.raises(sqlite3.OperationalError):
        reader.set_meta("k", "v")
    with pytest.raises(ConfigError, match="no study here"):
        StudyStore(tmp_path / "nothing", read_only=True)


def test_delete_all_forgets_runs_and_names_their_folders(tmp_path: Path) -> None:
    runs = make_runs()
    with StudyStore(tmp_path) as store:
        store.add_runs(runs)
        assert store.delete_all() == [f"runs/{r.run_id}" for r in runs]
        assert store.runs() == []


WRITER = """
import sys
import time
from pathlib import Path
from biotune.study import RunOutcome, RunStatus, StudyConfig, StudyStore, expand_grid
study = StudyConfig.model_validate({"models": ["m"], "datasets": ["BIOSSES"], "seeds": 400})
with StudyStore(Path(sys.argv[1])) as store:
    store.add_runs(expand_grid(study))
    print("ready", flush=True)
    for record in store.runs():
        store.mark_running(record.run_id, "w")
        store.finish(RunOutcome(record.run_id, RunStatus.DONE, 1.0, 2.0, {"test": {"score": 2.0}}))
        time.sleep(0.01)  # slow enough to be killed half-way
"""


def test_kill_9_in_the_middle_of_writes_keeps_every_committed_result(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
    assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
    with StudyStore(tmp_path, read_only=True) as reader:
        while reader.counts()[RunStatus.DONE] < 20:
            time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    with StudyStore(tmp_path, read_only=True) as reader:
        assert reader._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        records = reader.runs()
    done = [r for r in records if r.status == RunStatus.DONE]
    assert len(records) == 400 and 0 < len(done) < 400, "kill the writer while it is still writing"
    assert all(r.test_score == 2.0 and r.metrics == {"test": {"score": 2.0}} for r in done)
    assert sum(r.status == RunStatus.RUNNING for r in records) <= 1
