"""Runners execute a study's runs: `local` (this process, one after another) or `ray` (one Ray task each).

A worker only writes its run folder and returns a `RunOutcome`; the driver writes the store through
the callbacks, so Ray workers on other machines never touch SQLite. A full disk is not a run's result:
it stops the study (`DiskFullError`) and the run goes back to the queue for the resume.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from biotune.errors import BiotuneError, ConfigError
from biotune.run_folder import RunResults, StoredRunMetrics
from biotune.study.records import RunOutcome, RunPruned, RunStatus
from biotune.tracking import RunTracking

if TYPE_CHECKING:
    from biotune.training import EpochHook

log = logging.getLogger("biotune")

ERROR_FILE = "error.txt"
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# resolved options kept in the store beside each result, so the report can show registry defaults
RESOLVED_KEYS = (
    "learning_rate",
    "batch_size",
    "epochs",
    "max_length",
    "warmup_ratio",
    "pooling",
    "pair_encoding",
)


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs for one run; plain data so it pickles to a Ray worker."""

    run_id: str
    config: dict[str, Any]
    run_dir: str
    description: str
    tracking: RunTracking | None = None  # the study's experiment and the run's tags, for `report_to`


@dataclass(frozen=True)
class RunCallbacks:
    started: Callable[[RunTask], None]
    finished: Callable[[RunTask, RunOutcome], None]
    interrupted: Callable[[RunTask], None]


class DiskFullError(BiotuneError):
    """The disk filled up: every later run would fail too, so the study stops instead of recording them."""


def disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is the disk (or the user's quota) running out."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(where: str | Path, exc: BaseException) -> DiskFullError:
    return DiskFullError(
        f"{where}: the disk is full ({exc}); free some space and run the same command again: "
        "every finished run is kept and the runs left start over"
    )


@contextlib.contextmanager
def disk_full_stops(where: str | Path) -> Iterator[None]:
    """An OSError for a full disk inside becomes one clear `DiskFullError`; other errors pass as they are."""
    try:
        yield
    except OSError as exc:
        if disk_full(exc):
            raise disk_full_error(where, exc) from exc
        raise


class Runner(Protocol):
    name: str

    def run(self, tasks: Sequence[RunTask], callbacks: RunCallbacks) -> None: ...


def outcome_from_results(run_id: str, results: RunResults, started_at: float) -> RunOutcome:
    """Turn run_training's results (one seed) into what the store keeps."""
    seed = results.seeds[0]
    metrics = StoredRunMetrics.from_results(results, RESOLVED_KEYS).model_dump(mode="json")
    return RunOutcome(
        run_id=run_id,
        status=RunStatus.DONE if seed.ok else RunStatus.FAILED,
        dev_score=seed.score("dev"),
        test_score=seed.score("test"),
        metrics=metrics,
        error=None if seed.ok else (seed.error or "the run was judged failed"),
        started_at=started_at,
        ended_at=time.time(),
    )


def execute_run(task: RunTask, on_epoch: EpochHook | None = None) -> RunOutcome:
    """Train one run into its folder; anything it raises becomes a failed, crashed outcome.

    Except a full disk: that raises `DiskFullError`, so the run is not recorded as a result. `on_epoch`
    (a search's pruning hook) sees every dev evaluation; when it raises `RunPruned`, the run is `pruned`.
    """
    from biotune.config import TrainConfig
    from biotune.runs import run_training

    started_at = time.time()
    run_dir = Path(task.run_dir)
    try:
        if run_dir.exists():  # left by an interrupted attempt: start clean
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        config = TrainConfig.model_validate(task.config)
        results = run_training(config, run_dir, progress=False, tracking=task.tracking, on_epoch=on_epoch)
        return outcome_from_results(task.run_id, results, started_at)
    except RunPruned as stop:
        return RunOutcome(
            task.run_id,
            RunStatus.PRUNED,
            max(row["dev"] for row in stop.history) if stop.history else stop.dev_score,
            None,
            {"history": stop.history, "pruned_after_epoch": stop.epoch},
            str(stop),
            started_at=started_at,
            ended_at=time.time(),
        )
    except Exception as exc:  # a bug or bad data in one run must not stop the study
        if disk_full(exc):
            raise disk_full_error(run_dir, exc) from exc
        _write_traceback(run_dir)
        message = str(exc) if isinstance(exc, BiotuneError) else f"{type(exc).__name__}: {exc}"
        return RunOutcome(
            task.run_id,
            RunStatus.FAILED,
            None,
            None,
            {},
            message,
            crashed=True,
            started_at=started_at,
            ended_at=time.time(),
        )


def _write_traceback(run_dir: Path) -> None:
    with contextlib.suppress(OSError):  # the folder itself is the problem: the store still gets the message
        (run_dir / ERROR_FILE).write_text(traceback.format_exc(), encoding="utf-8")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class LocalRunner:
    """Runs in this process, in grid order."""

    name = "local"

    def run(self, tasks: Sequence[RunTask], callbacks: RunCallbacks) -> None:
        for task in tasks:
            callbacks.started(task)
            try:
                outcome = execute_run(task)
            except BaseException:  # Ctrl-C: the run goes back to the queue
                callbacks.interrupted(task)
                raise
            callbacks.finished(task, outcome)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "the ray runner needs Ray: `pip install 'biotune[ray]'` (or use --runner local)"
        ) from exc
    return ray


PROBE_PREFIX = ".biotune-probe-"


def probe_study_folder(folder: str, token_name: str, token: str) -> tuple[str, bool]:
    """On a worker: whether it sees the driver's study folder (the token file the driver wrote there)."""
    path = Path(folder) / token_name
    try:
        seen = path.read_text(encoding="utf-8") == token
    except OSError:
        seen = False
    return socket.gethostname(), seen


class RayRunner:
    """One Ray task per run. Joins the cluster at `address`, or starts a local one with `cluster_cpus` CPUs
    (and `cluster_gpus` GPUs: logical ones are fine, Ray only counts them).

    Workers write run folders at the driver's path, so the study folder must be on a filesystem every
    node shares: before the first run, a probe on every node checks that it sees a file the driver wrote
    there, and the study fails up front with one message if one does not. The store needs no sharing;
    results come back with each task.

    GPUs: each run asks for `gpus_per_run` (a fraction packs several small runs on one GPU; None: one GPU
    a run when the cluster has any, else none). Ray's own retries (`max_retries`) cover system failures
    only, a worker process or node that died; a run that diverged or raised is a result and is not retried.

    At most as many runs are in flight as the cluster can place at once, so `running` in the store
    means a run holds a worker slot rather than waits in Ray's queue.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        cluster_cpus: int | None = None,
        *,
        gpus_per_run: float | None = None,
        cluster_gpus: int | None = None,
        max_retries: int = 3,
        execute: Callable[[RunTask], RunOutcome] = execute_run,
    ) -> None:
        if num_cpus <= 0:
            raise ConfigError(f"--num-cpus must be positive, got {num_cpus}")
        if gpus_per_run is not None and gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must be 0 or more, got {gpus_per_run}")
        if max_retries < 0:
            raise ConfigError(f"--max-retries must be 0 or more, got {max_retries}")
        self.address = address
        self.num_cpus = num_cpus
        self.cluster_cpus = cluster_cpus
        self.gpus_per_run = gpus_per_run
        self.cluster_gpus = cluster_gpus
        self.max_retries = max_retries
        self.execute = execute

    def _connect(self, ray: Any) -> bool:
        """Returns whether this runner connected (and so must disconnect)."""
        if ray.is_initialized():
            return False
        if self.address:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot join the Ray cluster at {self.address!r}: {exc}") from exc
        else:
            extra = {"num_gpus": self.cluster_gpus} if self.cluster_gpus is not None else {}
            ray.init(
                num_cpus=self.cluster_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                log_to_driver=False,
                **extra,
            )
        return True

    def _gpus_per_run(self, ray: Any) -> float:
        cluster = float(ray.cluster_resources().get("GPU", 0))
        if self.gpus_per_run is None:
            return 1.0 if cluster >= 1 else 0.0
        if self.gpus_per_run > cluster:
            raise ConfigError(
                f"--gpus-per-run {self.gpus_per_run:g}, but the Ray cluster has {cluster:g} GPU(s)"
            )
        return self.gpus_per_run

    def _capacity(self, ray: Any, num_gpus: float) -> int:
        resources = ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // self.num_cpus)
        if num_gpus:
            slots = min(slots, int(resources.get("GPU", 0) / num_gpus + 1e-9))
        if slots < 1:
            raise ConfigError(
                f"the Ray cluster has {resources.get('CPU', 0)} CPUs; a run asks for {self.num_cpus} "
                "(lower --num-cpus)"
            )
        return slots

    def _write_probe_token(self, folder: Path, token_name: str, token: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / token_name).write_text(token, encoding="utf-8")

    def check_shared_folder(self, ray: Any, folder: Path) -> None:
        """Every alive node must see the study folder; else one clear error before any run starts."""
        import uuid

        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token = uuid.uuid4().hex
        token_name = PROBE_PREFIX + token[:12]
        self._write_probe_token(folder, token_name, token)
        try:
            probe = ray.remote(num_cpus=0)(probe_study_folder)
            refs = [
                probe.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                ).remote(str(folder), token_name, token)
                for node in ray.nodes()
                if node.get("Alive")
            ]
            blind = sorted({host for host, seen in ray.get(refs) if not seen})
        finally:
            with contextlib.suppress(OSError):
                (folder / token_name).unlink()
        if blind:
            raise ConfigError(
                f"Ray worker node(s) {', '.join(blind)} cannot see the study folder {folder}: put it on a "
                "filesystem every node shares (NFS, a cluster file system) and pass that path as --output"
            )

    def run(self, tasks: Sequence[RunTask], callbacks: RunCallbacks) -> None:
        ray = import_ray()
        connected_here = self._connect(ray)
        in_flight: dict[Any, RunTask] = {}
        try:
            if tasks:
                self.check_shared_folder(ray, Path(tasks[0].run_dir).parent)  # where the workers write
            num_gpus = self._gpus_per_run(ray)
            # retry_exceptions=False: only a dead worker or node is retried, never what a run returned
            remote = ray.remote(
                num_cpus=self.num_cpus,
                num_gpus=num_gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
            )(self.execute)
            capacity = self._capacity(ray, num_gpus)
            queue = deque(tasks)
            while queue or in_flight:
                while queue and len(in_flight) < capacity:
                    task = queue.popleft()
                    callbacks.started(task)
                    in_flight[remote.remote(task)] = task
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    task = in_flight[ref]
                    outcome = self._collect(ray, ref, task)  # a full disk raises: the task is requeued
                    del in_flight[ref]
                    callbacks.finished(task, outcome)
        except BaseException:
            for ref, task in in_flight.items():
                ray.cancel(ref, force=True)
                callbacks.interrupted(task)
            raise
        finally:
            if connected_here:
                ray.shutdown()

    @staticmethod
    def _collect(ray: Any, ref: Any, task: RunTask) -> RunOutcome:
        try:
            return ray.get(ref)
        except Exception as exc:  # the worker died past its retries (out of memory, node lost): failed
            cause = getattr(exc, "cause", None)  # what the task raised, when it raised
            if isinstance(cause, DiskFullError):
                raise cause from None
            return RunOutcome(
                task.run_id,
                RunStatus.FAILED,
                None,
                None,
                {},
                f"the Ray worker failed: {type(exc).__name__}: {exc}",
                crashed=True,
                ended_at=time.time(),
            )


def visible_gpus() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def make_runner(
    name: str,
    address: str | None = None,
    num_cpus: float = 1,
    cluster_cpus: int | None = None,
    *,
    gpus_per_run: float | None = None,
    max_retries: int = 3,
) -> Runner:
    """`local`: this process, one run after another; except on a machine with several GPUs, where a local
    Ray instance runs one run per GPU (when Ray is installed). `ray`: one Ray task a run."""
    if name == "local":
        if address:
            raise ConfigError("--address joins a Ray cluster: use it with --runner ray")
        gpus = visible_gpus()
        if gpus > 1:
            try:
                import_ray()
            except ConfigError:
                log.warning(
                    "%d GPUs visible but Ray is not installed: runs go one at a time on one GPU", gpus
                )
                return LocalRunner()
            log.warning("%d GPUs visible: one run per GPU, through a local Ray instance", gpus)
            return RayRunner(
                num_cpus=num_cpus,
                cluster_gpus=gpus,
                gpus_per_run=gpus_per_run if gpus_per_run is not None else 1.0,
                max_retries=max_retries,
            )
        return LocalRunner()
    if name == "ray":
        return RayRunner(
            address=address,
            num_cpus=num_cpus,
            cluster_cpus=cluster_cpus,
            gpus_per_run=gpus_per_run,
            max_retries=max_retries,
        )
    raise ConfigError(f"unknown runner {name!r}; choose local or ray")
