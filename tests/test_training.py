"""The fine-tuning engine end to end: every task type, determinism, failure detection, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from _run_files import split, summary
from _slices import slice_config
from biotune.cli import app
from biotune.config import TrainConfig, load_train_config
from biotune.errors import ConfigError
from biotune.evaluation import rescore_models
from biotune.run_folder import Baselines, SeedResult, Summary, read_results
from biotune.runs import run_training


def _own_config(
    shared_data: Path, tmp_path: Path, dataset: str, tiny_bert: Path, n: int = 24, **extra: object
) -> TrainConfig:
    return slice_config(shared_data, tmp_path, dataset, tiny_bert, n, **{"save_model": False, **extra})


@pytest.mark.parametrize(
    "dataset", ["NCBI-disease", "ebmnlp", "chemprot", "GAD", "BIOSSES", "HoC", "pubmedqa", "BioASQ"]
)
def test_every_task_type_trains_end_to_end(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, dataset: str
) -> None:
    config = _own_config(shared_data, tmp_path, dataset, tiny_bert)
    results = run_training(config, tmp_path / "run")

    seed = results.seeds[0]
    assert seed.dev is not None and seed.test is not None
    # a random 2-layer model on 24 examples need not learn: the collapse rule decides ok or failed, and
    # nothing may diverge or crash
    learned = seed.dev.score > results.baseline.trivial["dev"].score + 1e-9
    if learned:
        assert (seed.status, seed.error) == ("ok", None)
    else:
        assert (
            seed.status == "failed"
            and seed.error is not None
            and seed.error.startswith("collapsed: dev score")
        )
    assert isinstance(seed.dev.score, float) and isinstance(seed.test.score, float)
    assert 0.0 <= seed.test.score <= 100.0 or results.task_type == "similarity"
    run = tmp_path / "run"
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["seeds"][0]["test"] == seed.test.model_dump(mode="json")
    assert on_disk == {**results.to_dict(), "schema_version": 1} and read_results(run) == results
    assert json.loads((run / "seed-0" / "metrics.json").read_text()) == {
        **on_disk["seeds"][0],
        "schema_version": 1,
    }
    assert set(on_disk["summary"]) >= {"mean", "std", "min", "max", "n_ok", "failed"}
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 1
    predictions = (run / "seed-0" / "predictions_test.jsonl").read_text().splitlines()
    assert len(predictions) == results.featurization["test"].examples
    first = json.loads(predictions[0])
    assert {"id", "source", "gold", "pred"} <= set(first)
    assert (run / "train.log").read_text().strip()
    assert results.baseline.trivial["dev"].score is not None


def test_registry_dataset_run_writes_model_and_versions(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        dataset="biosses",
        model=str(tiny_bert),
        seeds=[0, 1],
        epochs=1,
        limit_train=16,
        batch_size=8,
        data_dir=shared_data,
    )
    results = run_training(config, tmp_path / "run")
    assert results.dataset == "BIOSSES"
    assert results.config["learning_rate"] == pytest.approx(1e-5)  # registry default (LinkBERT's BIOSSES)
    assert results.featurization["train"].examples == 16
    assert [s.seed for s in results.seeds] == [0, 1]
    assert {"torch", "transformers", "biotune", "python"} <= set(results.versions)
    assert results.baseline.zero_shot_cosine is not None
    model_dir = tmp_path / "run" / "seed-0" / "model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "biotune_model.json").is_file()


def test_same_seed_gives_identical_metrics(shared_data: Path, tiny_bert: Path, tmp_path: Path) -> None:
    def once(name: str) -> SeedResult:
        config = _own_config(
            shared_data, tmp_path / name, "NCBI-disease", tiny_bert, n=32, epochs=2, seeds=[7]
        )
        return run_training(config, tmp_path / name / "run").seeds[0]

    first, second = once("a"), once("b")
    assert first.dev == second.dev and first.test == second.test
    assert first.history == second.history


def test_absurd_learning_rate_is_detected_as_failed_and_other_seeds_go_on(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    config = _own_config(
        shared_data, tmp_path, "GAD", tiny_bert, learning_rate=1e6, seeds=[0, 1], epochs=2, max_grad_norm=1e9
    )
    results = run_training(config, tmp_path / "run")
    assert [s.seed for s in results.seeds] == [0, 1]
    assert all(s.status == "failed" for s in results.seeds)
    assert all((s.error or "").startswith(("diverged", "collapsed")) for s in results.seeds)
    assert results.summary.failed == 2 and results.summary.n_ok == 0


def test_conflicting_techniques_rejected_before_any_work(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    config = _own_config(shared_data, tmp_path, "GAD", tiny_bert, techniques=["freeze:2", "reinit:1"])
    with pytest.raises(ConfigError, match="freeze"):
        run_training(config, tmp_path / "run")
    assert not (tmp_path / "run" / "seed-0").exists()


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: biosses\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rat: unknown key"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match="technique"):
        load_train_config(None, {"techniques": ["frezze:2"]})
    with pytest.raises(ConfigError, match="seeds"):
        load_train_config(None, {"seeds": [1, 1]})


def test_cli_train_with_yaml_config(shared_data: Path, tiny_bert: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": "BIOSSES",
                "model": str(tiny_bert),
                "epochs": 1,
                "limit_train": 16,
                "batch_size": 8,
                "data_dir": str(shared_data),
                "save_model": False,
            }
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(config),
            "--seeds",
            "2",
            "-t",
            "reinit:1",
            "--output",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["techniques"] == ["reinit:1"] and len(results["seeds"]) == 2
    rescored = CliRunner().invoke(app, ["evaluate", str(tmp_path / "out"), "--json"])
    assert rescored.exit_code == 0, rescored.output
    payload = json.loads(rescored.output)
    assert payload["seeds"]["0"]["score"] == pytest.approx(results["seeds"][0]["test"]["score"])


def test_evaluate_reruns_saved_models_to_the_same_scores(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    config = _own_config(shared_data, tmp_path, "GAD", tiny_bert, seeds=[0, 1], save_model=True)
    results = run_training(config, tmp_path / "run")
    rerun = rescore_models(tmp_path / "run", "test")
    assert rerun["source"] == "models"
    for seed in results.seeds:
        assert rerun["seeds"][str(seed.seed)]["score"] == pytest.approx(seed.score("test"), abs=1e-9)
    with pytest.raises(ConfigError, match="dev or test"):
        rescore_models(tmp_path / "run", "train")


def _results(
    mean: float | None, zero_shot: float, trivial: float, pair_encoding: str
) -> tuple[Summary, Baselines, str]:
    baseline = Baselines(trivial={"test": split(trivial)}, zero_shot_cosine={"test": split(zero_shot)})
    return summary(mean), baseline, pair_encoding


def test_losing_to_the_untrained_model_is_said_with_the_fix() -> None:
    from biotune.runs import baseline_warnings

    lost = baseline_warnings(*_results(23.07, 84.69, 0.0, "cross"))
    assert len(lost) == 1
    assert "23.07" in lost[0] and "84.69" in lost[0] and "--pair-encoding siamese" in lost[0]
    assert "--pair-encoding" not in baseline_warnings(*_results(80.0, 84.69, 0.0, "siamese"))[0]
    assert baseline_warnings(*_results(87.3, 84.69, 0.0, "siamese")) == []
    both = baseline_warnings(*_results(-5.0, 84.69, 0.0, "cross"))
    assert len(both) == 2 and "trivial baseline 0.00" in both[1]
    assert baseline_warnings(*_results(None, 84.69, 0.0, "cross")) == []
