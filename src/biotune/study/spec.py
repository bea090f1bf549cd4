"""The study YAML: which models, datasets, techniques, seeds and hyper-parameters to cross.

A study is the product of its lists. `train` holds the options every run shares; the grid itself
sets dataset, model, seeds and techniques, so those keys may not appear there.

Per-dataset settings: `datasets` may be a mapping from dataset to the training options that dataset's runs
use on top of `train` (`datasets: {HoC: {epochs: 8, max_length: 256}, BIOSSES: null}`), or a list with an
`overrides:` block of the same shape. They are validated like `train`: an unknown key, a grid key, a key
that the hyper-parameter grid also sets, or a dataset that is not in the study is an error before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from biotune.config import Seeds, TrainConfig, build_config, read_yaml

STANDARD = "standard"
GRID_KEYS = ("dataset", "model", "seeds", "techniques", "output")
HYPERPARAMETER_KEYS = ("learning_rate", "batch_size", "epochs")


def _as_list(value: Any) -> Any:
    return value if value is None or isinstance(value, list) else [value]


class HyperparameterGrid(BaseModel):
    """Values to try; a key left out takes the dataset's registry default."""

    model_config = ConfigDict(extra="forbid")

    learning_rate: list[float] | None = None
    batch_size: list[int] | None = None
    epochs: list[int] | None = None

    @field_validator("learning_rate", "batch_size", "epochs", mode="before")
    @classmethod
    def _scalar_to_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("learning_rate", "batch_size", "epochs")
    @classmethod
    def _distinct_and_given(cls, values: list[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("give at least one value, or leave the key out for the registry default")
        if len(set(values)) != len(values):
            raise ValueError(f"values must be distinct, got {values}")
        return values

    def given(self) -> dict[str, list[Any]]:
        return {key: values for key in HYPERPARAMETER_KEYS if (values := getattr(self, key)) is not None}


class StudyConfig(BaseModel):
    """What `biotune study STUDY.yaml` reads."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    techniques: dict[str, list[str]] = Field(
        default_factory=lambda: {STANDARD: []},
        description="label -> --technique values; or a list where each string names itself",
    )
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2], description="a count or a list")
    hyperparameters: HyperparameterGrid = Field(default_factory=HyperparameterGrid)
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig options shared by every run")
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="dataset -> TrainConfig options for that dataset's runs, on top of `train`",
    )
    keep_models: Literal["best", "all"] = Field(
        "best",
        description="best: keep only the saved model of the best-dev seed of each setting (model x dataset "
        "x technique x hyper-parameters; the report names the best one to export or predict with); "
        "all: keep every run's model. `train: {save_model: false}` keeps none",
    )

    @model_validator(mode="before")
    @classmethod
    def _datasets_mapping(cls, data: Any) -> Any:
        """`datasets: {name: {options}}` is the list of names plus their `overrides`."""
        if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
            return data
        data = dict(data)
        mapping: dict[str, Any] = data["datasets"]
        overrides = dict(data.get("overrides") or {})
        for name, options in mapping.items():
            if options is None:
                continue
            if name in overrides:
                raise ValueError(
                    f"dataset {name!r} has settings under datasets and under overrides: give one"
                )
            overrides[name] = options
        data["datasets"], data["overrides"] = list(mapping), overrides
        return data

    @field_validator("models", "datasets")
    @classmethod
    def _distinct_names(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"names must be distinct, got {names}")
        return names

    @field_validator("techniques", mode="before")
    @classmethod
    def _techniques_mapping(cls, value: Any) -> Any:
        if isinstance(value, list):
            labels = [str(item) for item in value]
            if len(set(labels)) != len(labels):
                raise ValueError(f"technique names must be distinct, got {labels}")
            return {label: [] if label == STANDARD else [label] for label in labels}
        if isinstance(value, dict):
            return {label: [] if techs is None else _as_list(techs) for label, techs in value.items()}
        return value

    @field_validator("techniques")
    @classmethod
    def _techniques_given(cls, techniques: dict[str, list[str]]) -> dict[str, list[str]]:
        if not techniques:
            raise ValueError("name at least one technique (e.g. `standard: []`)")
        for label in techniques:
            if not label.strip():
                raise ValueError("a technique name may not be empty")
        return techniques

    @model_validator(mode="after")
    def _train_keys(self) -> StudyConfig:
        self._check_options("train", self.train)
        for dataset, options in self.overrides.items():
            if dataset not in self.datasets:
                raise ValueError(
                    f"overrides.{dataset}: not one of the study's datasets ({', '.join(self.datasets)}); "
                    "add it to datasets or fix its spelling"
                )
            self._check_options(f"overrides.{dataset}", options)
        return self

    def _check_options(self, where: str, options: dict[str, Any]) -> None:
        known = set(TrainConfig.model_fields)
        for key in options:
            if key == "seeds" and where.startswith("overrides."):
                # a dataset may have its own seeds (Gu et al.: 10 for the small sets, 5 elsewhere)
                options[key] = _dataset_seeds(where, options[key])
                continue
            if key in GRID_KEYS:
                raise ValueError(f"{where}.{key} is set by the study grid; use the top-level lists instead")
            if key in self.hyperparameters.given():
                raise ValueError(f"{where}.{key} is also in hyperparameters; give it in one place only")
            if key not in known:
                raise ValueError(
                    f"{where}.{key} is not a training option (known: {', '.join(sorted(known))})"
                )

    def options_for(self, dataset: str) -> dict[str, Any]:
        """The training options of one dataset's runs: `train`, then that dataset's overrides."""
        options = {**self.train, **self.overrides.get(dataset, {})}
        options.pop("seeds", None)
        return options

    def seeds_for(self, dataset: str) -> list[int]:
        return list(self.overrides.get(dataset, {}).get("seeds") or self.seeds)


def _dataset_seeds(where: str, value: Any) -> list[int]:
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(Seeds).validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{where}.seeds: {exc.errors()[0]['msg']}") from None


def load_study(path: Path) -> StudyConfig:
    """Read and validate a study YAML; any problem is one ConfigError naming the file and key."""
    return build_config(StudyConfig, read_yaml(path), str(path))
