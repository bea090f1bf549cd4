"""The study YAML: which models, datasets, techniques, seeds and hyper-parameters to cross.

A study is the product of its lists. `train` holds the options every run shares; the grid itself
sets dataset, model, seeds and techniques, so those keys may not appear there.
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
    keep_models: Literal["best", "all"] = Field(
        "best",
        description="best: keep only the saved model of the best-dev seed of each setting (model x dataset "
        "x technique x hyper-parameters; the report names the best one to export or predict with); "
        "all: keep every run's model. `train: {save_model: false}` keeps none",
    )

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
        known = set(TrainConfig.model_fields)
        for key in self.train:
            if key in GRID_KEYS:
                raise ValueError(f"train.{key} is set by the study grid; use the top-level lists instead")
            if key in self.hyperparameters.given():
                raise ValueError(f"train.{key} is also in hyperparameters; give it in one place only")
            if key not in known:
                raise ValueError(f"train.{key} is not a training option (known: {', '.join(sorted(known))})")
        return self


def load_study(path: Path) -> StudyConfig:
    """Read and validate a study YAML; any problem is one ConfigError naming the file and key."""
    return build_config(StudyConfig, read_yaml(path), str(path))
