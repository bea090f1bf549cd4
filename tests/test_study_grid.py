"""The study YAML and its grid: parsing, the product, stable run ids, and up-front validation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from biotune.errors import ConfigError
from biotune.study import StudyConfig, expand_grid, load_study, plan_study
from biotune.study.validate import check_runs


def make_study(**overrides: Any) -> StudyConfig:
    values: dict[str, Any] = {"models": ["some-model"], "datasets": ["BIOSSES"], "seeds": 2}
    values.update(overrides)
    return StudyConfig.model_validate(values)


def write_yaml(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_techniques_as_a_list_name_each_technique_by_itself() -> None:
    study = make_study(techniques=["standard", "freeze:3", "llrd:0.8"])
    assert study.techniques == {"standard": [], "freeze:3": ["freeze:3"], "llrd:0.8": ["llrd:0.8"]}


def test_techniques_as_a_mapping_accept_a_single_value_or_none() -> None:
    study = make_study(techniques={"standard": None, "reinit1": "reinit:1", "both": ["freeze:2", "llrd:0.9"]})
    assert study.techniques == {"standard": [], "reinit1": ["reinit:1"], "both": ["freeze:2", "llrd:0.9"]}


def test_seeds_are_a_count_or_a_list() -> None:
    assert make_study(seeds=3).seeds == [0, 1, 2]
    assert make_study(seeds=[7, 1]).seeds == [7, 1]
    with pytest.raises(ValueError, match="at least 1"):
        make_study(seeds=0)
    with pytest.raises(ValueError, match="distinct"):
        make_study(seeds=[1, 1])


def test_grid_is_the_product_in_a_stable_order() -> None:
    study = make_study(
        models=["m1", "m2"],
        datasets=["BIOSSES", "GAD"],
        techniques={"standard": [], "reinit1": ["reinit:1"]},
        seeds=3,
        hyperparameters={"learning_rate": [1e-5, "3e-5"], "epochs": 2},
        train={"limit_train": 8},
    )
    runs = expand_grid(study)
    assert len(runs) == 2 * 2 * 2 * 2 * 3
    assert [r.position for r in runs] == list(range(len(runs)))
    first, last = runs[0], runs[-1]
    assert (first.model, first.dataset, first.technique, first.seed) == ("m1", "BIOSSES", "standard", 0)
    assert (last.model, last.dataset, last.technique, last.seed) == ("m2", "GAD", "reinit1", 2)
    assert first.hyperparameters == {"learning_rate": 1e-5, "batch_size": None, "epochs": 2}
    assert last.hyperparameters["learning_rate"] == pytest.approx(3e-5)  # YAML's "3e-5" is a string
    assert last.techniques == ("reinit:1",)
    assert all(r.config.seeds == [r.seed] and r.config.limit_train == 8 for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)


def test_run_ids_depend_on_what_defines_a_result_only() -> None:
    base = {
        "techniques": ["standard", "reinit:1"],
        "seeds": 2,
        "hyperparameters": {"learning_rate": [1e-5, 2e-5]},
    }
    ids = {r.run_id for r in expand_grid(make_study(**base))}
    assert ids == {r.run_id for r in expand_grid(make_study(**base))}

    reordered = {
        **base,
        "techniques": ["reinit:1", "standard"],
        "seeds": [1, 0],
        "hyperparameters": {"learning_rate": [2e-5, 1e-5]},
    }
    assert {r.run_id for r in expand_grid(make_study(**reordered))} == ids
    where = {**base, "train": {"data_dir": "/elsewhere", "device": "cpu"}}
    assert {r.run_id for r in expand_grid(make_study(**where))} == ids
    aliased = {**base, "datasets": ["biosses"]}
    assert {r.run_id for r in expand_grid(make_study(**aliased))} == ids

    changed_option = {r.run_id for r in expand_grid(make_study(**base, train={"limit_train": 8}))}
    assert changed_option.isdisjoint(ids)
    more_seeds = {r.run_id for r in expand_grid(make_study(**{**base, "seeds": 3}))}
    assert ids < more_seeds and len(more_seeds - ids) == 4


def test_dataset_aliases_become_registry_names() -> None:
    assert {r.dataset for r in expand_grid(make_study(datasets=["biosses", "gad"]))} == {"BIOSSES", "GAD"}


def test_unknown_dataset_and_bad_technique_fail_together_before_anything_runs() -> None:
    study = make_study(datasets=["BIOSSES", "biosess-typo"], techniques=["standard", "reinit:x"])
    with pytest.raises(ConfigError) as caught:
        expand_grid(study)
    message = str(caught.value)
    assert "unknown dataset 'biosess-typo'" in message
    assert "reinit:x" in message and "whole number" in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"train": {"dataset": "GAD"}}, "set by the study grid"),
        ({"train": {"learning_rate": 1e-5}, "hyperparameters": {"learning_rate": [2e-5]}}, "one place only"),
        ({"train": {"learnin_rate": 1e-5}}, "not a training option"),
        ({"hyperparameters": {"warmup": [0.1]}}, "unknown key"),
        ({"hyperparameters": {"epochs": []}}, "at least one value"),
        ({"model": "x"}, "unknown key"),
        ({"datasets": []}, "datasets"),
    ],
)
def test_bad_study_files_name_the_key(tmp_path: Path, values: dict[str, Any], expected: str) -> None:
    path = write_yaml(tmp_path / "bad.yaml", {"models": ["m"], "datasets": ["BIOSSES"], **values})
    with pytest.raises(ConfigError) as caught:
        load_study(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_bad_train_value_is_caught_for_the_grid(tmp_path: Path) -> None:
    study = make_study(train={"max_length": 2})
    with pytest.raises(ConfigError, match="max_length"):
        expand_grid(study)


def test_check_runs_rejects_a_technique_the_model_cannot_take(tiny_bert: Path) -> None:
    runs = expand_grid(make_study(models=[str(tiny_bert)], techniques=["standard", "reinit:3"]))
    with pytest.raises(ConfigError) as caught:
        check_runs(runs)
    assert "reinit:3" in str(caught.value) and "2" in str(caught.value)


def test_check_runs_rejects_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    runs = expand_grid(make_study(models=[str(tmp_path)]))
    with pytest.raises(ConfigError, match="not a model folder"):
        check_runs(runs)


def test_missing_data_files_are_a_warning_not_an_error(tiny_bert: Path, shared_data: Path) -> None:
    runs, warnings = plan_study(
        make_study(
            models=[str(tiny_bert)], datasets=["BIOSSES", "ebmnlp"], train={"data_dir": str(shared_data)}
        ),
        "study",
    )
    assert len(runs) == 4
    assert [w for w in warnings if w.startswith("ebmnlp") and "train" in w]
    assert not [w for w in warnings if w.startswith("BIOSSES")]


def test_cli_reports_a_bad_study_as_one_message_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from biotune.cli import main

    path = write_yaml(tmp_path / "typo.yaml", {"models": ["m"], "datasets": ["BIOSES-typo"]})
    output = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["biotune", "study", str(path), "--output", str(output)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "unknown dataset" in err and "Traceback" not in err
    assert not output.exists()


def test_per_dataset_settings_apply_to_that_dataset_only() -> None:
    study = make_study(
        datasets={"BIOSSES": None, "HoC": {"epochs": 8, "max_length": 256}},
        train={"limit_train": 8, "max_length": 128},
    )
    assert study.datasets == ["BIOSSES", "HoC"]
    runs = expand_grid(study)
    by_dataset = {r.dataset: r.config for r in runs}
    assert (by_dataset["HoC"].epochs, by_dataset["HoC"].max_length) == (8, 256)
    assert (by_dataset["BIOSSES"].epochs, by_dataset["BIOSSES"].max_length) == (None, 128)
    assert by_dataset["HoC"].limit_train == 8  # `train` still applies underneath
    # the same thing as an overrides block; a setting is part of the run's identity
    same = make_study(datasets=["BIOSSES", "HoC"], overrides={"HoC": {"epochs": 8, "max_length": 256}},
                      train={"limit_train": 8, "max_length": 128})  # fmt: skip
    assert [r.run_id for r in expand_grid(same)] == [r.run_id for r in runs]
    plain = make_study(datasets=["BIOSSES", "HoC"], train={"limit_train": 8, "max_length": 128})
    ids = {r.dataset: r.run_id for r in expand_grid(plain)}
    assert ids["BIOSSES"] == {r.dataset: r.run_id for r in runs}["BIOSSES"]
    assert ids["HoC"] != {r.dataset: r.run_id for r in runs}["HoC"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"datasets": ["BIOSSES"], "overrides": {"GAD": {"epochs": 2}}}, "not one of the study's datasets"),
        ({"datasets": {"BIOSSES": {"epoch": 2}}}, r"overrides.BIOSSES.epoch is not a training option"),
        ({"datasets": {"BIOSSES": {"model": "m2"}}}, "set by the study grid"),
        (
            {"datasets": {"BIOSSES": {"epochs": 2}}, "hyperparameters": {"epochs": [3]}},
            "also in hyperparameters",
        ),
        (
            {"datasets": {"BIOSSES": {"epochs": 2}}, "overrides": {"BIOSSES": {"epochs": 3}}},
            "under datasets and under overrides",
        ),
    ],
)
def test_bad_per_dataset_settings_fail_before_any_work(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_study(**values)


def test_a_bad_per_dataset_value_fails_the_whole_grid_up_front() -> None:
    study = make_study(datasets={"BIOSSES": {"epochs": 0}})
    with pytest.raises(ConfigError, match="epochs"):
        expand_grid(study)


def test_an_unknown_dataset_with_settings_is_an_error_from_the_yaml(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", {"models": ["m"], "datasets": {"NotADataset": {"epochs": 2}}})
    study = load_study(path)
    with pytest.raises(ConfigError, match="NotADataset"):
        expand_grid(study)


def test_a_dataset_can_have_its_own_seeds() -> None:
    study = make_study(datasets={"BIOSSES": {"seeds": 10}, "GAD": None}, seeds=5)
    runs = expand_grid(study)
    seeds = {d: sorted(r.seed for r in runs if r.dataset == d) for d in ("BIOSSES", "GAD")}
    assert seeds == {"BIOSSES": list(range(10)), "GAD": list(range(5))}
    with pytest.raises(ValueError, match=r"overrides.BIOSSES.seeds"):
        make_study(datasets={"BIOSSES": {"seeds": 0}})


def test_the_papers_grid_dry_runs_offline_with_its_size_and_time(shared_data: Path) -> None:
    """examples/tinn2023.yaml names hub models this machine cannot reach: the dry run still validates
    it, counts train tokens (with the default tokenizer) and estimates the time at a given rate."""
    from typer.testing import CliRunner

    from biotune.cli import app
    from biotune.study.estimate import estimate_study

    path = Path(__file__).resolve().parents[1] / "examples" / "tinn2023.yaml"
    study = load_study(path)
    runs = expand_grid(study)
    # 5 models x 4 techniques x (10 datasets x 5 seeds + 3 datasets x 10 seeds)
    assert len(runs) == 5 * 4 * (10 * 5 + 3 * 10)
    hoc = next(r for r in runs if r.dataset == "HoC")
    assert hoc.config.precision == "bf16" and hoc.config.techniques == []
    estimate = estimate_study(runs, tokens_per_second=10_000.0, measure=lambda precision: pytest.fail())
    per_epoch = {c.dataset: c.train_tokens_per_epoch for c in estimate.costs}
    # BLURB.md's measured counts (biotune's featurization, the default tokenizer): BC2GM 0.48 M, DDI 2.43 M
    assert 0.46e6 < per_epoch["BC2GM"] < 0.50e6 and 2.40e6 < per_epoch["DDI"] < 2.46e6
    assert estimate.total_seconds == pytest.approx(estimate.total_tokens / 10_000.0)
    shown = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--tokens-per-second", "10000"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "1600 runs" in text and "10,000 tokens/s" in text and "counted with the default model's" in text


def test_the_estimate_counts_only_the_examples_limit_train_keeps(shared_data: Path) -> None:
    """A run on the first N examples trains on their tokens only: the dry run counts those, featurized
    as the run featurizes them."""
    from biotune.data.loading import load_dataset
    from biotune.models import load_tokenizer
    from biotune.study.estimate import estimate_study
    from biotune.tasks import TaskOptions, add_placeholder_tokens, task_for_spec

    study = StudyConfig.model_validate(
        {"models": ["minilm-l6"], "datasets": {"GAD": {"limit_train": 50}, "BIOSSES": None}, "seeds": 1}
    )
    estimate = estimate_study(expand_grid(study), tokens_per_second=1000.0, measure=lambda p: pytest.fail())
    per_epoch = {c.dataset: c.train_tokens_per_epoch for c in estimate.costs}
    splits = load_dataset("GAD", shared_data, splits=("train",))
    task = task_for_spec(splits.spec, TaskOptions())
    tokenizer = load_tokenizer("minilm-l6")
    add_placeholder_tokens(tokenizer, task.special_tokens(splits.train))  # @GENE$ / @DISEASE$, as a run does
    first_50 = sum(task.featurize(splits.train[:50], tokenizer, splits.spec.max_length).lengths)
    assert per_epoch["GAD"] == first_50 < 4000
    assert not any("limit_train" in note for note in estimate.notes)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
)
def test_every_example_study_validates_and_expands(name: str) -> None:
    """The studies the README tells users to run are valid, and their grids build (no data needed)."""
    path = Path(__file__).resolve().parents[1] / "examples" / name
    runs = expand_grid(load_study(path))
    assert runs and len({run.run_id for run in runs}) == len(runs)


def test_the_stability_study_is_the_issue_grid() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "stability.yaml"
    runs = expand_grid(load_study(path))
    assert {run.dataset for run in runs} == {"BIOSSES", "GAD", "pubmedqa", "BioASQ", "HoC"}
    techniques = {tuple(run.config.techniques) for run in runs}
    assert techniques == {
        (),
        ("freeze:3",),
        ("llrd:0.8",),
        ("reinit:1",),
        ("mixout:0.1",),
        ("pretrained-decay:100",),
    }
    assert len(runs) == 5 * 6 * 5
