"""Launching, faulting and killing `biotune study` in real subprocesses, and reading what they left behind.

A fault is injected by running the CLI under `python -c`: the fault's code patches biotune first (a
function that raises, a writer that fails), then hands over to `biotune.cli.main`, so the study runs
exactly as a user's would apart from that one patch. Nothing here is imported by the package.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from biotune.errors import BiotuneError
from biotune.study import RunRecord, StudyStore
from biotune.study.store import STORE_FILE

KILL_DEADLINE_S = 180
RUN_DEADLINE_S = 300
POLL_S = 0.02

_HAND_OVER_TO_CLI = "\nimport sys\nsys.argv[0] = 'biotune'\nfrom biotune.cli import main\nmain()\n"


# The tiny model gains nothing from a second thread, and on a shared machine two threads wait on each other
# (runs ten times slower); in-process runs compared with these must use one thread as well (`one_thread`).
THREADS = 1


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(THREADS),
        "MKL_NUM_THREADS": str(THREADS),
    }


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """This process trains with the children's thread count, so its scores match theirs to 1e-6."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def study_command(study_file: Path, output: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "biotune", "study", str(study_file), "--output", str(output), *options]


def faulty_study_command(fault: str, study_file: Path, output: Path, *options: str) -> list[str]:
    """`biotune study` with `fault` (Python source that patches biotune) applied first."""
    args = ["study", str(study_file), "--output", str(output), *options]
    return [sys.executable, "-c", fault + _HAND_OVER_TO_CLI, *args]


def run_to_end(command: list[str], timeout: float = RUN_DEADLINE_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=timeout)


def flat(text: str) -> str:
    """Text without whitespace: rich wraps a message (and a long path) at the console width."""
    return "".join(text.split())


# --- reading a study folder ---------------------------------------------------------------------------


def snapshot(study_dir: Path) -> dict[str, RunRecord]:
    """Every stored run by id; empty while there is no store or its schema is not committed yet."""
    try:
        with StudyStore(study_dir, read_only=True) as store:
            return {record.run_id: record for record in store.runs()}
    except (BiotuneError, sqlite3.Error):
        return {}


def finished_count(study_dir: Path) -> int:
    return sum(record.finished for record in snapshot(study_dir).values())


def integrity(study_dir: Path) -> str:
    uri = f"{(study_dir / STORE_FILE).resolve().as_uri()}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def folder_digest(folder: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` by relative path: a before/after picture of the folder."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in ignore
    }


# --- kill -9 at a drawn moment ------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Kill `delay` seconds after `after_done` runs have finished (0: after the store file appears)."""

    after_done: int
    delay: float

    def __str__(self) -> str:
        moment = "the store appears" if self.after_done == 0 else f"{self.after_done} run(s) finished"
        return f"{self.delay:.3f} s after {moment}"


def draw_kill_point(rng: random.Random, total_runs: int) -> KillPoint:
    # at most total-1 finished runs and a short delay: the kill lands before the study ends
    return KillPoint(after_done=rng.randint(0, total_runs - 1), delay=rng.uniform(0.0, 0.4))


def _reached(study_dir: Path, point: KillPoint) -> bool:
    if point.after_done == 0:
        return (study_dir / STORE_FILE).exists()
    return finished_count(study_dir) >= point.after_done


def kill_at(command: list[str], study_dir: Path, point: KillPoint, log: Path) -> None:
    """Start `command`, SIGKILL it at `point`; fails the test if the study ends or stalls first."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env())
        try:
            deadline = time.monotonic() + KILL_DEADLINE_S
            while process.poll() is None and time.monotonic() < deadline:
                if _reached(study_dir, point):
                    time.sleep(point.delay)
                    if process.poll() is None:
                        process.send_signal(signal.SIGKILL)
                        process.wait(timeout=30)
                        return
                    break
                time.sleep(POLL_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    pytest.fail(f"the study ended or stalled before the kill ({point}):\n{log.read_text()[-3000:]}")


# --- another live process holding a lock ----------------------------------------------------------------


def start_holder(code: str, *args: str) -> subprocess.Popen[str]:
    """A small Python process that takes a lock, prints `held` and keeps it until it ends or is stopped."""
    holder = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    assert holder.stdout is not None
    line = holder.stdout.readline().strip()  # blocks until the lock is held, or the holder died
    if line != "held":
        holder.kill()
        holder.wait(timeout=30)
        pytest.fail(f"the lock holder did not start (said {line!r})")
    return holder


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=30)
