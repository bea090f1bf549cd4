"""The study's embedded SQLite store: one row per run. The only module that touches SQLite.

Every state change is its own committed transaction and the journal is a write-ahead log, so a
process killed at any moment (kill -9) leaves every finished result and a consistent file behind;
readers (the report, a second terminal) see the last committed state without blocking the writer.
Every statement takes its values as parameters, never by string formatting. A store that cannot be
used (damaged, locked by another process, on a full disk) is one `StoreError` naming the file and
saying what to do, never a bare sqlite3 traceback.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from biotune.errors import BiotuneError, ConfigError
from biotune.study.grid import RunSpec
from biotune.study.records import FINISHED, RunOutcome, RunRecord, RunStatus

STORE_FILE = "study.sqlite"
SCHEMA_VERSION = "2"  # 2: the `pruned` status (a search's trials)
BUSY_TIMEOUT_MS = 30_000

# the runs table's columns, spliced into its CREATE statements (the migration creates a copy under
# another name): SQL text is only ever literals and these constants
_RUNS_COLUMNS_SQL = """(
    run_id               TEXT PRIMARY KEY,
    position             INTEGER NOT NULL,
    model                TEXT NOT NULL,
    dataset              TEXT NOT NULL,
    technique            TEXT NOT NULL,
    techniques_json      TEXT NOT NULL,
    hyperparameters_json TEXT NOT NULL,
    seed                 INTEGER NOT NULL,
    config_json          TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'pruned')),
    dev_score            REAL,
    test_score           REAL,
    metrics_json         TEXT NOT NULL DEFAULT '{}',
    error                TEXT,
    crashed              INTEGER NOT NULL DEFAULT 0,
    queued_at            REAL,
    started_at           REAL,
    ended_at             REAL,
    seconds              REAL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    worker               TEXT,
    run_dir              TEXT NOT NULL
)"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


_INDEX = "CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, position);"

_COLUMNS = (
    "run_id, position, model, dataset, technique, techniques_json, hyperparameters_json, seed, config_json, "
    "status, dev_score, test_score, metrics_json, error, crashed, queued_at, started_at, ended_at, seconds, "
    "attempts, worker, run_dir"
)


class StoreStateError(BiotuneError):
    """A state change that the run's current status does not allow (e.g. finishing a run never started)."""


class StoreError(BiotuneError):
    """The store file cannot be used: damaged, locked by another process, or on a full disk."""


def store_error(path: Path, exc: sqlite3.Error) -> StoreError | None:
    """The user's side of a SQLite failure, or None for one that is a bug here (kept as it is)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "Could not decode" in str(exc):
        return damaged_store(path, str(exc))
    if name.startswith("SQLITE_FULL"):
        return StoreError(
            f"{path}: the disk is full ({exc}); free some space and run the same command again: "
            "every finished run is kept"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"{path}: another process holds a lock on the study store ({exc}, after waiting "
            f"{BUSY_TIMEOUT_MS / 1000:g} s); let it finish or stop it, then run the same command again"
        )
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")):
        return StoreError(
            f"{path}: cannot read or write the study store ({exc}); check the disk and permissions"
        )
    return None


def damaged_store(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"{path}: the study store is damaged ({detail}); nothing was changed. Restore it from a backup, "
        f"or move it (with any {STORE_FILE}-wal/-shm beside it) out of the folder to start the study over, "
        "or use another --output folder"
    )


def run_dir_of(run_id: str) -> str:
    """Run folders are relative to the study folder, so the folder can be moved or copied whole."""
    return f"runs/{run_id}"


class StudyStore:
    """Open with `StudyStore(study_dir)` to write or `StudyStore(study_dir, read_only=True)` to read."""

    def __init__(self, study_dir: Path, *, read_only: bool = False) -> None:
        self.study_dir = Path(study_dir)
        self.path = self.study_dir / STORE_FILE
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise ConfigError(
                f"{self.study_dir}: no study here (missing {STORE_FILE}); run `biotune study` first"
            )
        if not read_only:
            self.study_dir.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = None
        try:
            with self._sqlite_errors():
                self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        timeout = BUSY_TIMEOUT_MS / 1000
        if self.read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout)
            return
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # a damaged file is refused before any run starts, not when a finished run's result is written
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise damaged_store(self.path, "; ".join(problems[:3]))
        self._db.executescript(f"{_SCHEMA}CREATE TABLE IF NOT EXISTS runs {_RUNS_COLUMNS_SQL};\n{_INDEX}")
        self._check_schema()

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            problem = store_error(self.path, exc)
            if problem is None:
                raise
            raise problem from exc

    def _check_schema(self) -> None:
        found = self.get_meta("schema_version")
        if found is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif found == "1":
            self._migrate_from_1()
        elif found != SCHEMA_VERSION:
            raise ConfigError(
                f"{self.path}: store schema version {found}, this biotune writes {SCHEMA_VERSION}; "
                "use a new --output folder"
            )

    def _migrate_from_1(self) -> None:
        """Version 1 lacks the `pruned` status; SQLite cannot change a CHECK, so the table is copied into
        one that allows it (one transaction: a crash leaves version 1 as it was)."""
        with self._transaction() as db:
            db.execute(f"CREATE TABLE runs_v2 {_RUNS_COLUMNS_SQL}")
            db.execute(f"INSERT INTO runs_v2 ({_COLUMNS}) SELECT {_COLUMNS} FROM runs")
            db.execute("DROP TABLE runs")  # its index goes with it
            db.execute("ALTER TABLE runs_v2 RENAME TO runs")
            db.execute(_INDEX)
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None, "the store is not open"
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._conn
        with self._sqlite_errors():
            # IMMEDIATE takes the write lock up front, so a change never fails half-way on a busy store.
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")  # may fail too (disk full): SQLite may then have rolled back already
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # --- metadata ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._sqlite_errors():
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- planning ---------------------------------------------------------------------------------

    def add_runs(self, runs: Iterable[RunSpec]) -> list[str]:
        """Queue the runs the store does not hold yet (one transaction); returns the ids added."""
        now = time.time()
        added: list[str] = []
        with self._transaction() as db:
            for run in runs:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO runs (run_id, position, model, dataset, technique, "
                    "techniques_json, hyperparameters_json, seed, config_json, status, queued_at, run_dir) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        run.position,
                        run.model,
                        run.dataset,
                        run.technique,
                        json.dumps(list(run.techniques)),
                        json.dumps(run.hyperparameters),
                        run.seed,
                        json.dumps(run.config_json()),
                        RunStatus.QUEUED.value,
                        now,
                        run_dir_of(run.run_id),
                    ),
                )
                if cursor.rowcount:
                    added.append(run.run_id)
                else:  # a resumed study may reorder its lists: keep the store's order in step
                    db.execute("UPDATE runs SET position = ? WHERE run_id = ?", (run.position, run.run_id))
        return added

    def requeue_interrupted(self) -> list[str]:
        """Runs left `running` by a process that died go back to the queue; only while no runner works."""
        return self._requeue(RunStatus.RUNNING)

    def requeue_failed(self) -> list[str]:
        return self._requeue(RunStatus.FAILED)

    def _requeue(self, status: RunStatus) -> list[str]:
        with self._transaction() as db:
            ids = [row[0] for row in db.execute("SELECT run_id FROM runs WHERE status = ?", (status.value,))]
            db.execute(
                "UPDATE runs SET status = ?, queued_at = ?, started_at = NULL, ended_at = NULL, "
                "seconds = NULL, dev_score = NULL, test_score = NULL, metrics_json = '{}', error = NULL, "
                "crashed = 0, worker = NULL WHERE status = ?",
                (RunStatus.QUEUED.value, time.time(), status.value),
            )
        return ids

    def delete_all(self) -> list[str]:
        """Forget every run (start the study over); returns the run folders the caller should remove."""
        with self._transaction() as db:
            folders = [row[0] for row in db.execute("SELECT run_dir FROM runs")]
            db.execute("DELETE FROM runs")
        return folders

    # --- state changes ----------------------------------------------------------------------------

    def mark_running(self, run_id: str, worker: str) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ?, started_at = ?, attempts = attempts + 1, worker = ? "
                "WHERE run_id = ? AND status = ?",
                (RunStatus.RUNNING.value, time.time(), worker, run_id, RunStatus.QUEUED.value),
            )
            if cursor.rowcount != 1:
                raise StoreStateError(f"run {run_id} cannot start: {self._status_text(db, run_id)}")

    def finish(self, outcome: RunOutcome) -> None:
        if outcome.status not in FINISHED:
            raise StoreStateError(
                f"run {outcome.run_id}: a result is done or failed (or pruned by a search), "
                f"not {outcome.status}"
            )
        ended_at = outcome.ended_at if outcome.ended_at is not None else time.time()
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET status = ?, dev_score = ?, test_score = ?, metrics_json = ?, error = ?, "
                "crashed = ?, started_at = COALESCE(?, started_at), ended_at = ? "
                "WHERE run_id = ? AND status = ?",
                (
                    outcome.status.value,
                    outcome.dev_score,
                    outcome.test_score,
                    json.dumps(outcome.metrics),
                    outcome.error,
                    int(outcome.crashed),
                    outcome.started_at,
                    ended_at,
                    outcome.run_id,
                    RunStatus.RUNNING.value,
                ),
            )
            if cursor.rowcount != 1:
                state = self._status_text(db, outcome.run_id)
                raise StoreStateError(f"run {outcome.run_id} cannot finish: {state}")
            db.execute("UPDATE runs SET seconds = ended_at - started_at WHERE run_id = ?", (outcome.run_id,))

    def requeue(self, run_id: str) -> None:
        """A run stopped on purpose (Ctrl-C) goes back to the queue instead of waiting for a resume."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, queued_at = ?, started_at = NULL, worker = NULL "
                "WHERE run_id = ? AND status = ?",
                (RunStatus.QUEUED.value, time.time(), run_id, RunStatus.RUNNING.value),
            )

    @staticmethod
    def _status_text(db: sqlite3.Connection, run_id: str) -> str:
        row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return "no such run" if row is None else f"its status is {row[0]}"

    # --- queries ----------------------------------------------------------------------------------

    def runs(self, status: RunStatus | None = None) -> list[RunRecord]:
        """Rows in grid order; with `status`, only those."""
        with self._sqlite_errors():
            if status is None:
                rows = self._conn.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY position, run_id").fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT {_COLUMNS} FROM runs WHERE status = ? ORDER BY position, run_id", (status.value,)
                ).fetchall()
        return [self._decode(row) for row in rows]

    def get(self, run_id: str) -> RunRecord:
        with self._sqlite_errors():
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return self._decode(row)

    def counts(self) -> dict[RunStatus, int]:
        with self._sqlite_errors():
            found = dict(self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        return {status: found.get(status.value, 0) for status in RunStatus}

    def _decode(self, row: tuple[Any, ...]) -> RunRecord:
        try:
            return _record(row)
        except (ValueError, TypeError) as exc:  # a cell that is not the JSON or status it was written as
            raise damaged_store(self.path, f"run {row[0]}: {exc}") from exc


def _record(row: tuple[Any, ...]) -> RunRecord:
    (
        run_id,
        position,
        model,
        dataset,
        technique,
        techniques_json,
        hyperparameters_json,
        seed,
        config_json,
        status,
        dev_score,
        test_score,
        metrics_json,
        error,
        crashed,
        queued_at,
        started_at,
        ended_at,
        seconds,
        attempts,
        worker,
        run_dir,
    ) = row
    return RunRecord(
        run_id=run_id,
        position=position,
        model=model,
        dataset=dataset,
        technique=technique,
        techniques=tuple(json.loads(techniques_json)),
        hyperparameters=json.loads(hyperparameters_json),
        seed=seed,
        config=json.loads(config_json),
        status=RunStatus(status),
        dev_score=dev_score,
        test_score=test_score,
        metrics=json.loads(metrics_json),
        error=error,
        crashed=bool(crashed),
        queued_at=queued_at,
        started_at=started_at,
        ended_at=ended_at,
        seconds=seconds,
        attempts=attempts,
        worker=worker,
        run_dir=run_dir,
    )
