"""The Ray runner: a two-run study on a local Ray instance (no network); results land in the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from biotune.errors import ConfigError
from biotune.study import RayRunner, RunStatus, StudyStore, make_runner, run_study
from biotune.study.runners import import_ray


def test_a_two_run_study_on_a_local_ray_instance(tmp_path: Path, tiny_bert: Path, shared_data: Path) -> None:
    ray = pytest.importorskip("ray")
    study_file = tmp_path / "ray.yaml"
    study_file.write_text(
        yaml.safe_dump(
            {
                "models": [str(tiny_bert)],
                "datasets": ["BIOSSES"],
                "techniques": ["standard"],
                "seeds": 2,
                "hyperparameters": {"epochs": [1], "batch_size": [8], "learning_rate": [1e-4]},
                "train": {"limit_train": 8, "max_length": 64, "data_dir": str(shared_data), "device": "cpu"},
            }
        ),
        encoding="utf-8",
    )
    result = run_study(study_file, tmp_path / "study", runner=RayRunner(cluster_cpus=2))
    assert not ray.is_initialized()  # the runner started Ray, so it shut it down

    assert len(result.ran) == 2
    with StudyStore(tmp_path / "study", read_only=True) as store:
        records = store.runs()
    assert sorted(r.seed for r in records) == [0, 1]
    for record in records:
        results = json.loads(
            (tmp_path / "study" / record.run_dir / "results.json").read_text(encoding="utf-8")
        )
        seed = results["seeds"][0]
        # the store says what the run on the Ray worker wrote: done when its seed is ok, else failed
        # with the seed's own reason; it trained, so it did not crash
        expected = (RunStatus.DONE, None) if seed["status"] == "ok" else (RunStatus.FAILED, seed["error"])
        assert (record.status, record.error, record.crashed) == (*expected, False)
        assert record.worker and record.worker.startswith("ray")
        assert record.test_score is not None and record.metrics["test"]["score"] == record.test_score
        assert seed["seed"] == record.seed
        assert seed["test"]["score"] == pytest.approx(record.test_score)


def test_without_ray_installed_the_runner_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if absent
    with pytest.raises(ConfigError, match=r"pip install 'biotune\[ray\]'"):
        import_ray()


def test_runner_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="--runner ray"):
        make_runner("local", address="auto")
    with pytest.raises(ConfigError, match="unknown runner"):
        make_runner("slurm")
    with pytest.raises(ConfigError, match="positive"):
        make_runner("ray", num_cpus=0)
