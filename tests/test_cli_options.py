"""The command-line flags come from the config models: every field has its flag, of its type, and back."""

from __future__ import annotations

import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import typer
import yaml
from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo
from typer.testing import CliRunner

from biotune.cli import app
from biotune.cli.cmd_study import study as study_command
from biotune.cli.cmd_train import TRAIN_ARGUMENTS, TRAIN_FLAG_NAMES
from biotune.cli.cmd_train import train as train_command
from biotune.cli.options import config_values, flag_name, model_flags, with_signature
from biotune.config import Seeds, TrainConfig
from biotune.study import StudyConfig, make_runner, run_study
from biotune.study.spec import GRID_KEYS, HYPERPARAMETER_KEYS, HyperparameterGrid

runner = CliRunner()
NOT_FIELDS = {"config"}  # train's one option that is no TrainConfig field: the YAML file of the fields
# values a field's validator accepts where the generic sample of its type would not
SAMPLES: dict[str, tuple[list[str], Any]] = {
    "techniques": (["reinit:1", "freeze:2"], ["freeze:2", "reinit:1"]),
    # validated values: the tracking backends, and tag names given as a comma list
    "report_to": (["tensorboard", "mlflow"], ["tensorboard", "mlflow"]),
    "tag_names": (["O,B-Disease", "I-Disease"], ["O", "B-Disease", "I-Disease"]),
}


def plain(text: str) -> str:
    """Rich draws errors in a box wrapped at the terminal width: the words alone, one space apart."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def _bare(annotation: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def _flags(name: str) -> tuple[str, ...]:
    return TRAIN_FLAG_NAMES.get(name, (flag_name(name),))


def _sample(name: str, info: FieldInfo) -> tuple[list[str], Any]:
    """Command-line words that set field `name` to a non-default value, and that value."""
    flag = _flags(name)[-1]  # the last spelling: the first is checked by the other tests
    if name in SAMPLES:
        values, expected = SAMPLES[name]
        return [word for value in values for word in (flag, value)], expected
    annotation = _bare(info.annotation)
    if name == "seeds":
        return [flag, "1,5"], [1, 5]
    if typing.get_origin(annotation) is Literal:
        choice = typing.get_args(annotation)[-1]
        return [flag, str(choice)], choice
    if annotation is bool:
        return ([flag] if not info.default else ["--no-" + flag.removeprefix("--")]), not info.default
    if typing.get_origin(annotation) is list:
        return [flag, "a", flag, "b"], ["a", "b"]
    samples = {int: ("9", 9), float: ("0.5", 0.5), str: ("x", "x"), Path: ("p", Path("p"))}
    text, value = samples[annotation]
    return ([text] if name in TRAIN_ARGUMENTS else [flag, text]), value


class _Captured(Exception):
    pass


def _train_config(monkeypatch: pytest.MonkeyPatch, arguments: list[str]) -> TrainConfig:
    """The TrainConfig that `biotune train ARGUMENTS` hands to run_training."""
    captured: list[TrainConfig] = []

    def capture(config: TrainConfig, *args: object, **kwargs: object) -> None:
        captured.append(config)
        raise _Captured

    monkeypatch.setattr("biotune.runs.run_training", capture)
    result = runner.invoke(app, ["train", *arguments])
    assert isinstance(result.exception, _Captured), result.output
    return captured[0]


def test_every_train_config_field_has_its_flag_and_every_flag_its_field() -> None:
    parameters = inspect.signature(train_command).parameters
    assert set(parameters) - NOT_FIELDS == set(TrainConfig.model_fields)
    for name, parameter in parameters.items():
        info = typing.get_args(parameter.annotation)[1]
        assert parameter.default is None, name  # a flag left out leaves the YAML file or the model's default
        if name in NOT_FIELDS:
            continue
        assert info.help and TrainConfig.model_fields[name].description in info.help
        if name in TRAIN_ARGUMENTS:
            assert isinstance(info, typer.models.ArgumentInfo)
        else:
            # in `Annotated[T, typer.Option("--a", "-b")]` typer holds the first name as `default`
            names = (info.default, *info.param_decls)
            declared = [spelling for decl in names for spelling in decl.split("/")]
            assert set(_flags(name)) <= set(declared), name


@pytest.mark.parametrize("name", sorted(TrainConfig.model_fields))
def test_each_flag_sets_its_field_with_the_fields_type(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    info = TrainConfig.model_fields[name]
    words, expected = _sample(name, info)
    config = _train_config(monkeypatch, words)
    assert getattr(config, name) == expected
    assert type(getattr(config, name)) is type(expected)
    annotation = _bare(info.annotation)
    if annotation in (int, float) or typing.get_origin(annotation) is Literal:
        refused = runner.invoke(app, ["train", _flags(name)[0], "not-a-value"])
        assert refused.exit_code == 2 and not isinstance(refused.exception, _Captured), refused.output
        assert f"Invalid value for '{_flags(name)[0]}'" in plain(refused.output)


def test_descriptions_give_every_field_its_help() -> None:
    undocumented = [name for name, info in TrainConfig.model_fields.items() if not info.description]
    assert undocumented == []


def test_flags_reach_the_config_with_their_types(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = _train_config(
        monkeypatch,
        [
            "ncbi",
            "--lr",
            "4e-5",
            "--seeds",
            "1,5",
            "-t",
            "freeze:2",
            "--technique",
            "llrd:0.9",
            "--dropout",
            "0.2",
            "--max-grad-norm",
            "0.5",
            "--pooling",
            "mean",
            "--checkpoint",
            "last",
            "--no-save-model",
            "--trust-remote-code",
            "--task-type",
            "ner",
            "--train-file",
            str(tmp_path / "train.tsv"),
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert config.dataset == "ncbi" and config.learning_rate == 4e-5 and config.seeds == [1, 5]
    assert config.techniques == ["freeze:2", "llrd:0.9"]
    assert (config.dropout, config.max_grad_norm, config.pooling, config.checkpoint) == (
        0.2,
        0.5,
        "mean",
        "last",
    )
    assert (config.save_model, config.trust_remote_code, config.task_type) == (False, True, "ner")
    assert config.train_file == tmp_path / "train.tsv" and config.output == tmp_path / "out"
    assert _train_config(monkeypatch, ["ncbi", "--seeds", "3", "--learning-rate", "1e-4"]).seeds == [0, 1, 2]


def test_flags_left_out_keep_the_yaml_and_given_ones_override_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text(
        yaml.safe_dump(
            {"dataset": "gad", "dropout": 0.3, "trust_remote_code": True, "techniques": ["reinit:1"]}
        )
    )
    kept = _train_config(monkeypatch, ["--config", str(yaml_file)])
    assert (kept.dataset, kept.dropout, kept.trust_remote_code, kept.techniques) == (
        "gad",
        0.3,
        True,
        ["reinit:1"],
    )
    assert kept.max_grad_norm == TrainConfig.model_fields["max_grad_norm"].default
    overridden = _train_config(
        monkeypatch, ["--config", str(yaml_file), "--dropout", "0.1", "--no-trust-remote-code", "biosses"]
    )
    assert (overridden.dataset, overridden.dropout, overridden.trust_remote_code) == ("biosses", 0.1, False)


def test_a_value_outside_the_choices_or_range_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("biotune.runs.run_training", lambda *a, **k: pytest.fail("must not train"))
    wrong_choice = runner.invoke(app, ["train", "ncbi", "--pooling", "max"])
    assert wrong_choice.exit_code == 2 and "'cls', 'mean'" in plain(wrong_choice.output)
    out_of_range = runner.invoke(app, ["train", "ncbi", "--dropout", "1.5"])
    assert "dropout" in str(out_of_range.exception) and "less than 1" in str(out_of_range.exception)


class _FutureConfig(BaseModel):
    """Field types a config may grow; each gets its flag without touching the command-line code."""

    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="numeric precision")
    gradient_checkpointing: bool = Field(False, description="recompute activations")
    tags: list[str] = Field(default_factory=list, description="free labels")
    cache: Path | None = Field(None, description="a folder")
    steps: int | None = Field(None, description="a count")
    scale: float = Field(1.0, description="a factor")
    seeds: Seeds = Field(default_factory=lambda: [0], description="seeds")


def test_new_fields_get_flags_of_their_type() -> None:
    flags = model_flags(_FutureConfig)
    received: dict[str, Any] = {}

    def command(**given: Any) -> None:
        received.clear()
        received.update(config_values(flags, given))

    cli = typer.Typer()
    cli.command()(with_signature(command, flags, []))
    cli.command("other")(lambda: None)  # two commands: typer then wants the command name first
    result = runner.invoke(
        cli,
        ["command", "--precision", "bf16", "--gradient-checkpointing", "--tags", "a", "--tags", "b"]
        + ["--cache", "c", "--steps", "4", "--scale", "0.5", "--seeds", "2"],
    )
    assert result.exit_code == 0, result.output
    assert received == {
        "precision": "bf16",
        "gradient_checkpointing": True,
        "tags": ["a", "b"],
        "cache": Path("c"),
        "steps": 4,
        "scale": 0.5,
        "seeds": [0, 1],
    }
    assert runner.invoke(cli, ["command", "--no-gradient-checkpointing"]).exit_code == 0
    assert received["gradient_checkpointing"] is False
    wrong = runner.invoke(cli, ["command", "--precision", "int4"])
    assert wrong.exit_code == 2 and "'fp32', 'bf16', 'fp16'" in plain(wrong.output)
    assert runner.invoke(cli, ["command"]).exit_code == 0
    assert set(received.values()) == {None}  # nothing given: the model's defaults decide


def test_a_field_type_without_a_command_line_form_fails_naming_the_field() -> None:
    class Odd(BaseModel):
        weights: dict[str, float] = Field(default_factory=dict)

    with pytest.raises(TypeError, match=r"Odd\.weights: no command-line form"):
        model_flags(Odd)


def test_study_flags_are_the_run_options_and_the_study_file_holds_the_grid() -> None:
    """`biotune study` takes the grid from its YAML (StudyConfig) and only how to run it as flags:
    each one is a parameter of run_study or make_runner, under the same name and with the same default."""
    parameters = inspect.signature(study_command).parameters
    assert not set(parameters) & set(StudyConfig.model_fields)
    from biotune.study.estimate import estimate_study

    api = {
        name: p.default
        for function in (run_study, make_runner, estimate_study)
        for name, p in inspect.signature(function).parameters.items()
    }
    api["dry_run"] = False  # the mode that calls estimate_study instead of run_study
    # progress: the command's own printer; name: make_runner's spelling of `runner`; cluster_cpus: tests;
    # runs, measure: estimate_study's inputs, built by the command
    assert set(parameters) == set(api) - {"progress", "name", "cluster_cpus", "runs", "measure"}
    for name, parameter in parameters.items():
        info = parameter.default  # the command declares `name: T = typer.Option(default, ...)`
        default = api[name] if api[name] is not inspect.Parameter.empty else ...
        assert info.default == default, name
        if isinstance(info, typer.models.OptionInfo):
            assert flag_name(name) in info.param_decls[0].split("/") and info.help, name


def test_study_keys_name_real_train_options() -> None:
    """The grid's keys and hyper-parameters are TrainConfig fields, so renaming one cannot drift."""
    assert set(GRID_KEYS) <= set(TrainConfig.model_fields)
    assert set(HYPERPARAMETER_KEYS) == set(HyperparameterGrid.model_fields) <= set(TrainConfig.model_fields)
    for key in HYPERPARAMETER_KEYS:
        assert (
            _bare(HyperparameterGrid.model_fields[key].annotation)
            == list[_bare(TrainConfig.model_fields[key].annotation)]
        )
