"""The Ray runner and GPUs: fractional GPUs per run, retries of dead workers only, the shared-folder probe.

Ray on this machine is started with logical GPUs (`num_gpus=1`): Ray only counts them, so scheduling is
tested without a GPU. The runs themselves train on the CPU.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from biotune.errors import ConfigError
from biotune.study import RayRunner, RunStatus, StudyStore, run_study
from biotune.study.runners import RunTask, execute_run

ray = pytest.importorskip("ray")


def write_study(tmp_path: Path, tiny_bert: Path, shared_data: Path, seeds: int = 2) -> Path:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        yaml.safe_dump(
            {
                "models": [str(tiny_bert)],
                "datasets": ["BIOSSES"],
                "techniques": ["standard"],
                "seeds": seeds,
                "hyperparameters": {"epochs": [2], "batch_size": [8], "learning_rate": [1e-4]},
                "train": {"limit_train": 16, "max_length": 64, "data_dir": str(shared_data), "device": "cpu"},
            }
        ),
        encoding="utf-8",
    )
    return study_file


@pytest.fixture
def ray_with_one_gpu() -> Any:
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_half_a_gpu_per_run_puts_two_runs_in_flight(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, ray_with_one_gpu: Any
) -> None:
    runner = RayRunner(gpus_per_run=0.5)
    assert runner._capacity(ray, runner._gpus_per_run(ray)) == 2
    arrived = tmp_path / "arrived"
    arrived.mkdir()

    def meet_then_run(task: RunTask):  # noqa: ANN202 - pickled by value into the worker
        # each run waits for the other to start: one run per GPU at a time would never get past here
        (arrived / task.run_id).write_text("x", encoding="utf-8")
        deadline = time.monotonic() + 120
        while len(list(arrived.iterdir())) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the other run never started while this one was in flight")
            time.sleep(0.1)
        return execute_run(task)

    runner.execute = meet_then_run
    result = run_study(write_study(tmp_path, tiny_bert, shared_data), tmp_path / "study", runner=runner)
    assert len(result.ran) == 2
    with StudyStore(tmp_path / "study", read_only=True) as store:
        records = store.runs()
    # both met and trained to the end (the tiny random model may lose to the trivial baseline: a result)
    assert all(not r.crashed and r.test_score is not None for r in records), [r.error for r in records]


def test_one_gpu_per_run_on_one_gpu_runs_one_at_a_time(ray_with_one_gpu: Any) -> None:
    runner = RayRunner(gpus_per_run=1)
    assert runner._capacity(ray, runner._gpus_per_run(ray)) == 1
    with pytest.raises(ConfigError, match="has 1 GPU"):
        RayRunner(gpus_per_run=2)._gpus_per_run(ray)


def test_a_worker_that_dies_is_retried_and_the_run_ends_done(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, ray_with_one_gpu: Any
) -> None:
    marker = tmp_path / "died-once"

    def dies_on_first_attempt(task: RunTask):  # noqa: ANN202 - pickled by value into the worker
        if not marker.exists():
            marker.write_text("x", encoding="utf-8")
            os._exit(1)  # the worker process dies: a system failure, for Ray to retry
        return execute_run(task)

    runner = RayRunner(gpus_per_run=0.5, max_retries=2, execute=dies_on_first_attempt)
    study_file = write_study(tmp_path, tiny_bert, shared_data, seeds=1)
    result = run_study(study_file, tmp_path / "study", runner=runner)
    assert marker.exists() and len(result.ran) == 1
    with StudyStore(tmp_path / "study", read_only=True) as store:
        (record,) = store.runs()
    assert not record.crashed and record.test_score is not None  # trained to the end on the retry
    assert record.attempts == 1  # Ray retried inside one attempt of the study's


def test_without_retries_a_dead_worker_is_a_crashed_run(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, ray_with_one_gpu: Any
) -> None:
    def always_dies(task: RunTask):  # noqa: ANN202
        os._exit(1)

    runner = RayRunner(max_retries=0, execute=always_dies)
    run_study(write_study(tmp_path, tiny_bert, shared_data, seeds=1), tmp_path / "study", runner=runner)
    with StudyStore(tmp_path / "study", read_only=True) as store:
        (record,) = store.runs()
    assert record.status == RunStatus.FAILED and record.crashed
    assert "Ray worker failed" in (record.error or "")


class UnsharedFolderRunner(RayRunner):
    """As if the workers had their own disks: the driver's probe file lands where no worker looks."""

    def __init__(self, elsewhere: Path, **options: Any) -> None:
        super().__init__(**options)
        self.elsewhere = elsewhere

    def _write_probe_token(self, folder: Path, token_name: str, token: str) -> None:
        super()._write_probe_token(self.elsewhere, token_name, token)


def test_a_study_folder_the_workers_cannot_see_fails_up_front(
    tmp_path: Path, tiny_bert: Path, shared_data: Path, ray_with_one_gpu: Any
) -> None:
    runner = UnsharedFolderRunner(tmp_path / "driver-only")
    with pytest.raises(ConfigError, match="cannot see the study folder .* shares"):
        run_study(write_study(tmp_path, tiny_bert, shared_data), tmp_path / "study", runner=runner)
    with StudyStore(tmp_path / "study", read_only=True) as store:
        assert all(r.status != RunStatus.DONE for r in store.runs())  # nothing ran
    assert not list((tmp_path / "study").glob("runs/*/results.json"))


def test_gpu_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--gpus-per-run"):
        RayRunner(gpus_per_run=-1)
    with pytest.raises(ConfigError, match="--max-retries"):
        RayRunner(max_retries=-1)
