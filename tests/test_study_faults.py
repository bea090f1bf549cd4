"""Faults during a study, each with a real subprocess (tiny BERT, BIOSSES): after each, the study resumes.

Cases: kill -9 at moments drawn from seeded RNGs; a run that raises inside training; a run that
diverges; a full disk (a failing writer, and a real tiny tmpfs where mounting is allowed); a store file
that is garbage, truncated or holds a damaged row; a store locked by another process (briefly: the study
waits; for too long: one clear error); the study lock held by a live process. Every case ends with the
study resumed: every run finished, every result equal to an uninterrupted reference study, every result
finished before the fault unchanged (store row and run folder), the broken run marked with its error.

The session ends with a line `faults: N cases tried, F failures`. BIOTUNE_FAULT_KILLS=10 draws ten kill
moments instead of three without changing what is checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

import biotune.study.store
from _study_proc import (
    draw_kill_point,
    faulty_study_command,
    flat,
    folder_digest,
    integrity,
    kill_at,
    one_thread,
    run_to_end,
    snapshot,
    start_holder,
    stop,
    study_command,
)
from biotune.cli import main
from biotune.study import RunRecord, RunStatus, StudyProgress, run_study
from biotune.study.orchestrate import LOCK_FILE
from biotune.study.runners import DiskFullError, RayRunner, RunTask
from biotune.study.store import STORE_FILE

KILL_SEEDS = range(int(os.environ.get("BIOTUNE_FAULT_KILLS", "3")))
# the store's write-ahead log and shared memory, and the lock file, change on every open by design
VOLATILE = (LOCK_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm")

# --- tally ----------------------------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    failures: int = 0
    kinds: set[str] = field(default_factory=set)


TALLY = Tally()


@contextlib.contextmanager
def fault_case(kind: str) -> Iterator[None]:
    TALLY.cases += 1
    TALLY.kinds.add(kind)
    try:
        yield
    except pytest.skip.Exception:
        TALLY.cases -= 1
        raise
    except BaseException:
        TALLY.failures += 1
        raise


@pytest.fixture(scope="session", autouse=True)
def _print_fault_tally(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not TALLY.cases:
        return
    line = (
        f"faults: {TALLY.cases} cases tried, {TALLY.failures} failures "
        f"({len(TALLY.kinds)} kinds: {', '.join(sorted(TALLY.kinds))})"
    )
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
        reporter.write_line("")
        reporter.write_line(line)


# --- the study and its uninterrupted reference ----------------------------------------------------------

# 4 runs of 4 steps each; at lr 1e-3 the tiny model beats the trivial baseline, so the runs are `done`
BASE_STUDY: dict[str, Any] = {
    "datasets": ["BIOSSES"],
    "techniques": ["standard", "reinit:1"],
    "seeds": 2,
    "hyperparameters": {"epochs": [1], "batch_size": [4], "learning_rate": [1e-3]},
}


def write_study(path: Path, tiny_bert: Path, shared_data: Path, **changes: Any) -> Path:
    train = {"limit_train": 16, "max_length": 64, "data_dir": str(shared_data), "device": "cpu"}
    study = {"models": [str(tiny_bert)], **BASE_STUDY, "train": {**train, "save_model": False}, **changes}
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Reference:
    study_file: Path
    study_dir: Path
    runs: dict[str, RunRecord]

    @property
    def order(self) -> list[str]:
        return sorted(self.runs, key=lambda run_id: self.runs[run_id].position)


@pytest.fixture(scope="module", autouse=True)
def _train_like_the_subprocesses() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, shared_data: Path) -> Reference:
    folder = tmp_path_factory.mktemp("reference")
    study_file = write_study(folder / "study.yaml", tiny_bert, shared_data)
    result = run_study(study_file, folder / "study")
    runs = snapshot(folder / "study")
    assert len(result.ran) == len(runs) == 4 and all(record.finished for record in runs.values())
    return Reference(study_file, folder / "study", runs)


def copy_of_reference(reference: Reference, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reference.study_dir, tmp_path / "study"))


def forget_run(study_dir: Path, run_id: str) -> None:
    """As if that run had never been reached: its row and folder gone, the resume has it to do."""
    with contextlib.closing(sqlite3.connect(study_dir / STORE_FILE)) as db, db:
        db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    shutil.rmtree(study_dir / "runs" / run_id)


def run_folders(study_dir: Path, records: dict[str, RunRecord]) -> dict[str, dict[str, str]]:
    return {run_id: folder_digest(study_dir / record.run_dir) for run_id, record in records.items()}


def assert_same_result(record: RunRecord, expected: RunRecord) -> None:
    assert (record.status, record.crashed) == (expected.status, expected.crashed), record.run_id
    for got, want in ((record.dev_score, expected.dev_score), (record.test_score, expected.test_score)):
        assert (got is None) == (want is None), record.run_id
        if want is not None:
            assert got == pytest.approx(want, abs=1e-6), record.run_id


def assert_complete_and_intact(
    study_dir: Path, reference: Reference, kept: dict[str, RunRecord], kept_files: dict[str, dict[str, str]]
) -> dict[str, RunRecord]:
    """Every run finished once, equal to the reference; what had finished before the fault is untouched."""
    after = snapshot(study_dir)
    assert set(after) == set(reference.runs)
    for run_id, record in after.items():
        assert record.finished, run_id
        assert_same_result(record, reference.runs[run_id])
        results = json.loads((study_dir / record.run_dir / "results.json").read_text(encoding="utf-8"))
        assert [seed["seed"] for seed in results["seeds"]] == [record.seed]
        assert results["seeds"][0]["test"]["score"] == pytest.approx(record.test_score)
        if run_id in kept:
            old = kept[run_id]
            assert (record.ended_at, record.attempts, record.metrics) == (
                old.ended_at,
                old.attempts,
                old.metrics,
            )
            assert (record.dev_score, record.test_score, record.error) == (
                old.dev_score,
                old.test_score,
                old.error,
            )
    assert run_folders(study_dir, kept) == kept_files
    assert sorted(path.name for path in (study_dir / "runs").iterdir()) == sorted(after)
    assert integrity(study_dir) == "ok"
    return after


# --- kill -9 at random moments ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_a_study_killed_at_a_random_moment_resumes_with_every_finished_result_intact(
    seed: int, tmp_path: Path, reference: Reference
) -> None:
    with fault_case("kill -9 at a random moment"):
        point = draw_kill_point(random.Random(seed), len(reference.runs))
        study_dir = tmp_path / "study"
        kill_at(study_command(reference.study_file, study_dir), study_dir, point, tmp_path / "killed.log")

        at_kill = snapshot(study_dir)
        kept = {run_id: record for run_id, record in at_kill.items() if record.finished}
        in_flight = [run_id for run_id, record in at_kill.items() if record.status == RunStatus.RUNNING]
        assert len(in_flight) <= 1, f"killed {point}: several runs marked running"
        kept_files = run_folders(study_dir, kept)

        resumed = run_study(reference.study_file, study_dir)
        assert sorted(resumed.ran) == sorted(set(reference.runs) - set(kept)), f"killed {point}"
        after = assert_complete_and_intact(study_dir, reference, kept, kept_files)
        for run_id, record in after.items():
            assert record.attempts == (2 if run_id in in_flight else 1), f"killed {point}: {run_id}"
        assert run_study(reference.study_file, study_dir).ran == []


# --- a run that raises inside training, a run that diverges ---------------------------------------------

RAISE_IN_SECOND_STEP = """
import biotune.runs
import biotune.training

_train_seed, _optimizer_step = biotune.runs.train_seed, biotune.training._optimizer_step
_armed = {"on": False, "steps": 0}


def _faulty_train_seed(ctx, seed, on_step=None, on_epoch=None):
    _armed["on"] = seed == SEED and list(ctx.config.techniques) == TECHNIQUES
    _armed["steps"] = 0
    return _train_seed(ctx, seed, on_step, on_epoch)


def _faulty_step(*args, **kwargs):
    if _armed["on"]:
        _armed["steps"] += 1
        if _armed["steps"] == 2:
            raise RuntimeError("injected fault: a bug in the second optimizer step")
    return _optimizer_step(*args, **kwargs)


biotune.runs.train_seed = _faulty_train_seed
biotune.training._optimizer_step = _faulty_step
"""


def test_a_run_that_raises_inside_training_is_failed_with_its_error_and_the_study_goes_on(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, reference: Reference
) -> None:
    with fault_case("a run raises inside training"):
        # the broken run comes first, so the study has to go on past it
        study_file = write_study(
            tmp_path / "study.yaml", tiny_bert, shared_data, techniques=["reinit:1", "standard"]
        )
        study_dir = tmp_path / "study"
        fault = "SEED = 0\nTECHNIQUES = ['reinit:1']\n" + RAISE_IN_SECOND_STEP
        finished = run_to_end(faulty_study_command(fault, study_file, study_dir))
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert "Traceback" not in finished.stderr

        records = snapshot(study_dir)
        assert set(records) <= set(reference.runs) and len(records) == 4
        (broken,) = [r for r in records.values() if r.seed == 0 and r.technique == "reinit:1"]
        assert broken.status == RunStatus.FAILED and broken.crashed
        assert broken.error == "RuntimeError: injected fault: a bug in the second optimizer step"
        assert broken.dev_score is None and broken.test_score is None
        trace = (study_dir / broken.run_dir / "error.txt").read_text(encoding="utf-8")
        assert "Traceback" in trace and "_optimizer_step" in trace and "injected fault" in trace
        others = {run_id: record for run_id, record in records.items() if run_id != broken.run_id}
        for run_id, record in others.items():
            assert_same_result(record, reference.runs[run_id])

        assert run_study(study_file, study_dir).ran == []  # a failed run is a result: kept by a resume
        assert snapshot(study_dir)[broken.run_id] == broken
        retried = run_study(study_file, study_dir, retry_failed=True)
        assert retried.ran == [broken.run_id]
        after = assert_complete_and_intact(study_dir, reference, others, run_folders(study_dir, others))
        assert after[broken.run_id].attempts == 2 and not (study_dir / broken.run_dir / "error.txt").exists()


def test_a_run_that_diverges_is_failed_as_diverged_and_the_others_are_done(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, reference: Reference
) -> None:
    with fault_case("a run diverges"):
        absurd = {"epochs": [1], "batch_size": [4], "learning_rate": [1e6, 1e-3]}
        study_file = write_study(
            tmp_path / "study.yaml",
            tiny_bert,
            shared_data,
            techniques=["standard"],
            seeds=[0],
            hyperparameters=absurd,
        )
        study_dir = tmp_path / "study"
        finished = run_to_end(study_command(study_file, study_dir))
        assert finished.returncode == 0, finished.stderr[-3000:]

        records = snapshot(study_dir)
        (diverged,) = [r for r in records.values() if r.hyperparameters["learning_rate"] == 1e6]
        (sane,) = [r for r in records.values() if r.hyperparameters["learning_rate"] == 1e-3]
        assert diverged.status == RunStatus.FAILED and not diverged.crashed
        assert (diverged.error or "").startswith(("diverged", "collapsed")), diverged.error
        assert sane.run_id in reference.runs and not sane.crashed
        assert_same_result(sane, reference.runs[sane.run_id])
        assert run_study(study_file, study_dir).ran == []
        assert snapshot(study_dir) == records


# --- a full disk ----------------------------------------------------------------------------------------

FULL_DISK_FOR_ONE_RUN = """
import errno
import pathlib

_write_text = pathlib.Path.write_text


def _full_disk_write_text(self, data, *args, **kwargs):
    if self.name == "results.json.tmp" and self.parent.name == VICTIM:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))
    return _write_text(self, data, *args, **kwargs)


pathlib.Path.write_text = _full_disk_write_text
"""


def assert_one_clear_error(completed: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr, completed.stderr[-3000:]
    error = flat(completed.stderr)
    assert error.count("error:") == 1, completed.stderr[-3000:]
    for phrase in phrases:
        assert flat(phrase) in error, completed.stderr[-3000:]


def test_a_full_disk_while_writing_a_result_stops_the_study_and_the_resume_completes(
    tmp_path: Path, reference: Reference
) -> None:
    with fault_case("disk full (failing writer)"):
        first, victim, *rest = reference.order
        study_dir = tmp_path / "study"
        fault = f"VICTIM = {victim!r}\n" + FULL_DISK_FOR_ONE_RUN
        stopped = run_to_end(faulty_study_command(fault, reference.study_file, study_dir))
        assert_one_clear_error(
            stopped, "the disk is full", "No space left on device", "run the same command again"
        )

        at_stop = snapshot(study_dir)
        assert at_stop[first].status == RunStatus.DONE
        # not a result: back in the queue, no error recorded; the runs after it never started
        assert (at_stop[victim].status, at_stop[victim].error, at_stop[victim].attempts) == (
            RunStatus.QUEUED,
            None,
            1,
        )
        assert all(
            at_stop[run_id].status == RunStatus.QUEUED and at_stop[run_id].attempts == 0 for run_id in rest
        )

        kept = {first: at_stop[first]}
        kept_files = run_folders(study_dir, kept)
        resumed = run_study(reference.study_file, study_dir)  # the space is free again
        assert resumed.ran == [victim, *rest]
        assert_complete_and_intact(study_dir, reference, kept, kept_files)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 184 KiB tmpfs: the study store's write-ahead log fills it after the first run or two."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=184k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the failing writer covers a full disk"
        )
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def test_a_really_full_disk_stops_the_study_with_one_message_and_freeing_space_lets_it_finish(
    tiny_disk: Path, reference: Reference
) -> None:
    with fault_case("disk full (tiny tmpfs)"):
        study_dir = tiny_disk / "study"
        stopped = run_to_end(study_command(reference.study_file, study_dir))
        assert_one_clear_error(stopped, "the disk is full", "run the same command again")

        at_stop = snapshot(study_dir)
        kept = {run_id: record for run_id, record in at_stop.items() if record.finished}
        assert 0 < len(kept) < len(reference.runs), "the disk should fill up during the study"
        for run_id, record in kept.items():
            assert_same_result(record, reference.runs[run_id])
        kept_files = run_folders(study_dir, kept)

        subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
        resumed = run_study(reference.study_file, study_dir)
        assert sorted(resumed.ran) == sorted(set(reference.runs) - set(kept))
        assert_complete_and_intact(study_dir, reference, kept, kept_files)


def test_a_full_disk_in_a_ray_worker_stops_the_study_instead_of_failing_the_run() -> None:
    with fault_case("disk full (ray worker)"):
        task = RunTask("abc", {}, "runs/abc", "a run")
        full = DiskFullError("runs/abc: the disk is full")

        class TaskError(Exception):  # what ray.get raises for an exception inside the task
            cause = full

        def get(ref: object) -> None:
            raise TaskError("remote traceback ...")

        with pytest.raises(DiskFullError) as stopped:
            RayRunner._collect(SimpleNamespace(get=get), object(), task)
        assert stopped.value is full
        TaskError.cause = RuntimeError("a bug")  # any other error: the run failed, the study goes on
        outcome = RayRunner._collect(SimpleNamespace(get=get), object(), task)
        assert outcome.status == RunStatus.FAILED and outcome.crashed


# --- a corrupt store ------------------------------------------------------------------------------------


def cli_study(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`biotune study ...` through the CLI's own entry point, in this process; what a user would see."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["biotune", "study", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exited.value.code, captured.out, captured.err)


DAMAGED = ("the study store is damaged", "nothing was changed", "Restore it from a backup", "--output")


def test_a_garbage_store_stops_the_study_with_one_clear_error_and_destroys_nothing(
    tmp_path: Path, reference: Reference
) -> None:
    with fault_case("corrupt store (garbage bytes)"):
        study_dir = copy_of_reference(reference, tmp_path)
        store = study_dir / STORE_FILE
        backup = store.read_bytes()
        store.write_bytes(random.Random(0).randbytes(len(backup)))
        before = folder_digest(study_dir, VOLATILE)

        stopped = run_to_end(study_command(reference.study_file, study_dir))
        assert_one_clear_error(stopped, str(store), *DAMAGED)
        assert folder_digest(study_dir, VOLATILE) == before

        store.write_bytes(backup)  # restored from the backup: the study resumes with nothing to do
        kept = snapshot(study_dir)
        assert run_study(reference.study_file, study_dir).ran == []
        assert_complete_and_intact(study_dir, reference, kept, run_folders(study_dir, kept))


def damage_one_row(study_dir: Path, run_id: str) -> None:
    with contextlib.closing(sqlite3.connect(study_dir / STORE_FILE)) as db, db:
        db.execute("UPDATE runs SET metrics_json = ? WHERE run_id = ?", ('{"dev": {"score": 0.4', run_id))


def truncate_at_a_page(study_dir: Path) -> None:
    store = study_dir / STORE_FILE
    data = store.read_bytes()
    pages = len(data) // 4096
    store.write_bytes(data[: random.Random(1).randrange(1, pages) * 4096])


@pytest.mark.parametrize("damage", ["truncated", "damaged row"])
def test_a_damaged_store_is_refused_even_when_starting_over_and_the_advice_works(
    damage: str,
    tmp_path: Path,
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fault_case(f"corrupt store ({damage})"):
        study_dir = copy_of_reference(reference, tmp_path)
        backup = (study_dir / STORE_FILE).read_bytes()
        if damage == "truncated":
            truncate_at_a_page(study_dir)
        else:
            damage_one_row(study_dir, reference.order[2])
        before = folder_digest(study_dir, VOLATILE)

        for start_over in ((), ("--no-resume",)):  # starting over deletes run folders: not on a bad store
            stopped = cli_study(
                monkeypatch, capsys, str(reference.study_file), "--output", str(study_dir), *start_over
            )
            assert_one_clear_error(stopped, str(study_dir / STORE_FILE), *DAMAGED)
            assert folder_digest(study_dir, VOLATILE) == before

        if damage == "truncated":  # the message's other way out: move the store aside, run everything again
            (study_dir / STORE_FILE).rename(tmp_path / "damaged.sqlite")
            assert len(run_study(reference.study_file, study_dir).ran) == len(reference.runs)
            assert_complete_and_intact(study_dir, reference, {}, {})
        else:
            (study_dir / STORE_FILE).write_bytes(backup)
            kept = snapshot(study_dir)
            assert run_study(reference.study_file, study_dir).ran == []
            assert_complete_and_intact(study_dir, reference, kept, run_folders(study_dir, kept))


# --- a locked store, a held study lock ------------------------------------------------------------------

HOLD_WRITE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""

# exclusive locking mode: the lock outlives the transaction and keeps even readers out
HOLD_EXCLUSIVE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE meta SET value = value WHERE key = 'no such key'")
db.execute("COMMIT")
print("held", flush=True)
time.sleep(600)
"""

HOLD_STUDY_LOCK = """
import fcntl, os, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
handle.seek(0)
handle.truncate()
handle.write(f"pid {os.getpid()}")
handle.flush()
print("held", flush=True)
time.sleep(600)
"""


@dataclass
class LockOnceRunsArePlanned(StudyProgress):
    """Another process takes the store's write lock between planning and the first run, for `seconds`."""

    store: Path
    seconds: float
    holder: subprocess.Popen[str] | None = None
    held_at: float = 0.0
    started_at: float = 0.0

    def planned(self, total: int, to_run: int, warnings: list[str]) -> None:
        self.holder = start_holder(HOLD_WRITE_LOCK, str(self.store), str(self.seconds))
        self.held_at = time.monotonic()

    def run_started(self, record: RunRecord) -> None:
        self.started_at = time.monotonic()


def test_a_store_locked_for_a_moment_by_another_process_makes_the_study_wait_then_finish(
    tmp_path: Path, reference: Reference
) -> None:
    with fault_case("store locked briefly"):
        study_dir = copy_of_reference(reference, tmp_path)
        left = reference.order[1]
        forget_run(study_dir, left)
        kept = {run_id: record for run_id, record in snapshot(study_dir).items()}
        kept_files = run_folders(study_dir, kept)

        progress = LockOnceRunsArePlanned(study_dir / STORE_FILE, seconds=1.0)
        try:
            resumed = run_study(reference.study_file, study_dir, progress=progress)
        finally:
            if progress.holder is not None:
                stop(progress.holder)
        assert progress.holder is not None and progress.holder.returncode == 0  # it let go by itself
        assert progress.started_at - progress.held_at >= 0.9  # the run was marked only once the lock was free
        assert resumed.ran == [left]
        assert_complete_and_intact(study_dir, reference, kept, kept_files)


def test_a_store_locked_for_too_long_is_one_clear_error_and_no_damage(
    tmp_path: Path, reference: Reference, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_case("store locked too long"):
        study_dir = copy_of_reference(reference, tmp_path)
        left = reference.order[3]
        forget_run(study_dir, left)
        kept = snapshot(study_dir)
        kept_files = run_folders(study_dir, kept)
        before = folder_digest(study_dir, VOLATILE)

        monkeypatch.setattr(biotune.study.store, "BUSY_TIMEOUT_MS", 300)
        holder = start_holder(HOLD_EXCLUSIVE_LOCK, str(study_dir / STORE_FILE))
        try:
            stopped = cli_study(monkeypatch, capsys, str(reference.study_file), "--output", str(study_dir))
        finally:
            stop(holder)
        assert_one_clear_error(stopped, str(study_dir / STORE_FILE), "another process holds a lock", "0.3 s")
        assert folder_digest(study_dir, VOLATILE) == before

        monkeypatch.undo()
        assert run_study(reference.study_file, study_dir).ran == [left]
        assert_complete_and_intact(study_dir, reference, kept, kept_files)


def test_a_study_lock_held_by_a_live_process_is_one_clear_error_and_no_damage(
    tmp_path: Path, reference: Reference, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with fault_case("study lock held by a live process"):
        study_dir = copy_of_reference(reference, tmp_path)
        kept = snapshot(study_dir)
        before = folder_digest(study_dir, VOLATILE)

        holder = start_holder(HOLD_STUDY_LOCK, str(study_dir / LOCK_FILE))
        try:
            stopped = cli_study(monkeypatch, capsys, str(reference.study_file), "--output", str(study_dir))
        finally:
            stop(holder)
        assert_one_clear_error(stopped, f"another `biotune study` (pid {holder.pid}) is running this study")
        assert folder_digest(study_dir, VOLATILE) == before

        assert run_study(reference.study_file, study_dir).ran == []  # the holder is gone, so is its lock
        assert_complete_and_intact(study_dir, reference, kept, run_folders(study_dir, kept))
