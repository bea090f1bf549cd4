"""Experiment tracking: an MLflow and a TensorBoard round trip read back with their own readers, a backend
that fails mid-run, a backend that draws random numbers, the missing-package error, and the study's
experiment and tags."""

from __future__ import annotations

import importlib.util
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import biotune.tracking
from _slices import slice_config
from biotune.config import TrainConfig, build_config
from biotune.errors import ConfigError
from biotune.runs import resolve_config, run_training
from biotune.study import run_study
from biotune.study.grid import run_id_of
from biotune.study.runners import RunCallbacks, RunTask
from biotune.tracking import Tracking, group_learning_rates


def _config(shared_data: Path, tmp_path: Path, tiny_bert: Path, **extra: Any) -> TrainConfig:
    values: dict[str, Any] = {"epochs": 2, "seeds": [3], "save_model": False, **extra}
    return slice_config(shared_data, tmp_path, "NCBI-disease", tiny_bert, 24, **values)


def test_mlflow_and_tensorboard_hold_every_epoch(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tracking-test")
    config = _config(
        shared_data, tmp_path, tiny_bert, report_to=["tensorboard,mlflow"], techniques=["llrd:0.5"]
    )
    run = tmp_path / "run"
    results = run_training(config, run)
    seed = results.seeds[0]
    dev_by_epoch = {row.epoch: row.dev for row in seed.history}
    assert sorted(dev_by_epoch) == [1, 2]

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tracking-test"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["tags.seed"] == "3" and row["tags.dataset"] == results.dataset
    assert row["tags.technique"] == results.technique_label
    assert row["tags.biotune.seed_folder"] == str((run / "seed-3").resolve())
    assert row["params.learning_rate"] == str(results.config["learning_rate"])
    assert row["params.techniques"] == "llrd:0.5"
    assert row["metrics.final/test/score"] == pytest.approx(seed.score("test"))
    assert row["status"] == "FINISHED"
    client = mlflow.MlflowClient(uri)
    history = client.get_metric_history(row["run_id"], "dev/score")
    assert {point.step: point.value for point in history} == pytest.approx(dev_by_epoch)
    losses = client.get_metric_history(row["run_id"], "train/loss")
    assert [point.step for point in sorted(losses, key=lambda p: p.step)] == [1, 2]
    lr_keys = [key for key in runs.columns if key.startswith("metrics.lr/")]
    # layer-wise decay: the embeddings, every encoder layer and the head each have their own rate
    assert any("layer.0" in key for key in lr_keys) and any("embeddings" in key for key in lr_keys)
    # (after epoch 1: the linear schedule has brought every rate to 0 by the end of epoch 2)
    after_first = {
        point.value
        for key in lr_keys
        for point in client.get_metric_history(row["run_id"], key.removeprefix("metrics."))
        if point.step == 1
    }
    assert len(after_first) >= 3

    events = EventAccumulator(str(run / "tensorboard" / "seed-3"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"dev/score", "train/loss", "final/dev/score"} <= set(scalars)
    tensorboard_dev = {event.step: event.value for event in events.Scalars("dev/score")}
    assert tensorboard_dev == pytest.approx(dev_by_epoch, abs=1e-5)  # stored as float32
    assert any(tag.startswith("lr/") and "layer.1" in tag for tag in scalars)


class _Exploding:
    """A backend that starts, then fails mid-run (its disk is full) on every later call."""

    name = "mlflow"

    def __init__(self) -> None:
        self.started = self.calls = 0

    def start_seed(self, *args: Any) -> None:
        self.started += 1

    def _fail(self, *args: Any) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")

    log_epoch = finish_seed = _fail


class _RandomDrawer:
    """A backend that draws from every generator training uses, on every call."""

    name = "tensorboard"

    def _draw(self, *args: Any) -> None:
        random.random()
        np.random.rand(5)
        torch.rand(5)

    start_seed = log_epoch = finish_seed = _draw


def test_failing_or_random_backends_warn_once_and_change_nothing(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    plain = run_training(_config(shared_data, tmp_path / "a", tiny_bert), tmp_path / "a" / "run")
    exploding: list[_Exploding] = []

    def make_exploding() -> _Exploding:
        exploding.append(_Exploding())
        return exploding[-1]

    monkeypatch.setitem(biotune.tracking.BACKENDS, "mlflow", make_exploding)
    monkeypatch.setitem(biotune.tracking.BACKENDS, "tensorboard", _RandomDrawer)
    with caplog.at_level(logging.WARNING, logger="biotune.tracking"):
        tracked = run_training(
            _config(shared_data, tmp_path / "b", tiny_bert, report_to=["mlflow", "tensorboard"]),
            tmp_path / "b" / "run",
        )
    warnings = [r.getMessage() for r in caplog.records if r.name == "biotune.tracking"]
    assert len(warnings) == 1 and "mlflow failed" in warnings[0] and "No space left" in warnings[0]
    assert exploding[0].started == 1 and exploding[0].calls == 1  # off after the first failure (epoch 1)
    for key in ("status", "best_epoch", "history", "dev", "test"):
        assert getattr(tracked.seeds[0], key) == getattr(plain.seeds[0], key), key


def test_missing_package_fails_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def without_mlflow(name: str, *args: Any) -> Any:
        return None if name == "mlflow" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_mlflow)
    # the data file does not exist either: the tracking error comes first, before any file is read
    config = TrainConfig(
        train_file=tmp_path / "absent.tsv",
        dev_file=tmp_path / "absent.tsv",
        task_type="ner",
        report_to=["mlflow"],
    )
    with pytest.raises(ConfigError, match=r"pip install 'biotune\[tracking\]'"):
        resolve_config(config)


def test_report_to_spellings() -> None:
    assert TrainConfig(report_to="tensorboard,mlflow").report_to == ["tensorboard", "mlflow"]
    assert TrainConfig(report_to=["mlflow", "mlflow", "none"]).report_to == ["mlflow"]
    assert TrainConfig().report_to == []
    with pytest.raises(ConfigError, match="unknown tracking backend 'wandb'"):
        build_config(TrainConfig, {"report_to": ["wandb"]}, "options")


def test_learning_rates_are_named_by_layer() -> None:
    groups = [
        {
            "names": [
                "bert.encoder.layer.3.attention.self.query.weight",
                "bert.encoder.layer.3.output.dense.weight",
            ],
            "lr": 0.5,
            "weight_decay": 0.01,
        },
        {"names": ["bert.encoder.layer.3.output.LayerNorm.bias"], "lr": 0.5, "weight_decay": 0.0},
        {
            "names": ["bert.embeddings.word_embeddings.weight", "classifier.weight"],
            "lr": 1.0,
            "weight_decay": 0.01,
        },
        {"name": "head", "params": [], "lr": 2.0},
    ]
    assert group_learning_rates(groups) == {
        "bert.encoder.layer.3": 0.5,
        "bert.encoder.layer.3.output.LayerNorm.no_decay": 0.5,
        "all": 1.0,
        "head": 2.0,
    }


def test_study_logs_every_run_under_one_experiment(
    tiny_bert: Path, shared_data: Path, tmp_path: Path
) -> None:
    spec = {
        "models": [str(tiny_bert)],
        "datasets": ["BIOSSES"],
        "techniques": {"standard": [], "llrd": ["llrd:0.9"]},
        "seeds": 2,
        "train": {"data_dir": str(shared_data), "report_to": ["mlflow"]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    handed: list[RunTask] = []

    class Recorder:
        name = "recorder"

        def run(self, tasks: list[RunTask], callbacks: RunCallbacks) -> None:
            handed.extend(tasks)

    run_study(path, tmp_path / "compare-llrd", runner=Recorder(), report_to=["tensorboard,mlflow"])
    assert len(handed) == 4
    assert {task.tracking.experiment for task in handed if task.tracking} == {"compare-llrd"}
    assert {(t.tracking.tags["technique"], t.config["seeds"][0]) for t in handed if t.tracking} == {
        ("standard", 0),
        ("standard", 1),
        ("llrd", 0),
        ("llrd", 1),
    }
    assert all(task.config["report_to"] == ["tensorboard", "mlflow"] for task in handed)
    # tracking only observes: turning it on keeps a run's identity, so a resumed study keeps its runs
    config = TrainConfig(dataset="BIOSSES", seeds=[0])
    assert run_id_of(config, "standard") == run_id_of(
        config.model_copy(update={"report_to": ["mlflow"]}), "standard"
    )


def test_tracking_without_backends_is_none(tmp_path: Path) -> None:
    assert biotune.tracking.start_tracking([], None, tmp_path) is None
    tracking = biotune.tracking.start_tracking(["tensorboard"], None, tmp_path)
    assert isinstance(tracking, Tracking) and tracking.run_tracking.experiment_name()
