"""The study YAML: which models, datasets, techniques, seeds and hyper-parameters to cross.

A study is the product of its lists. `train` holds the options every run shares; the grid itself
sets dataset, model, seeds and techniques, so those keys may not appear there.

Per-dataset settings: `datasets` may be a mapping from dataset to the training options that dataset's runs
use on top of `train` (`datasets: {HoC: {epochs: 8, max_length: 256}, BIOSSES: null}`), or a list with an
`overrides:` block of the same shape. They are validated like `train`: an unknown key, a grid key, a key
that the hyper-parameter grid also sets, or a dataset that is not in the study is an error before any work.

A recipe search (`search:`, see `biotune.study.search`) replaces the technique and hyper-parameter grids:
Optuna samples the learning rate and one technique with its parameter per trial, for each model x dataset.
So `techniques`, `hyperparameters` and a `learning_rate` under `train`/`overrides` are refused with it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from biotune.config import Seeds, TrainConfig, build_config, read_yaml

STANDARD = "standard"
GRID_KEYS = ("dataset", "model", "seeds", "techniques", "output")
HYPERPARAMETER_KEYS = ("learning_rate", "batch_size", "epochs")


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str | float) -> float:
    """Seconds in `90s`, `30m`, `2h`, `1h30m` (or a plain number of seconds); ValueError with the forms."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        value = str(text).strip().lower().replace(" ", "")
        match = _DURATION.fullmatch(value)
        if value and match is None:
            try:
                seconds = float(value)
            except ValueError:
                seconds = math.nan
        elif match is None or not any(match.groups()):
            seconds = math.nan
        else:
            hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration is like 90s, 30m, 2h or 1h30m (more than zero), got {text!r}")
    return seconds


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


TechniqueFamily = Literal["standard", "freeze", "llrd", "reinit", "mixout"]
TECHNIQUE_FAMILIES: tuple[str, ...] = ("standard", "freeze", "llrd", "reinit", "mixout")
WHOLE_NUMBER_FAMILIES = ("freeze", "reinit")  # layer counts; llrd and mixout are real numbers
FLOAT_STEP = 0.01  # llrd D and mixout P are sampled on this grid, so a technique reads `llrd:0.85`
Duration = Annotated[float, BeforeValidator(parse_duration)]


class SearchConfig(BaseModel):
    """`search:` in a study: Optuna explores learning rate x technique x its parameter per model x dataset.

    A trial trains every study seed; its value is the mean dev score over them minus their sample std.
    """

    model_config = ConfigDict(extra="forbid")

    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's TPESampler or RandomSampler")
    trials: int = Field(20, ge=1, description="trials per model x dataset (pruned and failed ones count)")
    pruner: Literal["median", "threshold", "none"] = Field(
        "median",
        description="median: stop a trial whose dev score is below the median of earlier trials at the same "
        "seed and epoch (Optuna's MedianPruner); threshold: stop it below `threshold`; none: never stop",
    )
    startup_trials: int = Field(3, ge=0, description="median: trials that finish before any is pruned")
    warmup_epochs: int = Field(1, ge=0, description="epochs of a trial's first seed that are never pruned")
    threshold: float | None = Field(None, description="threshold pruner: the dev score a trial must reach")
    timeout: Duration | None = Field(
        None,
        description="per model x dataset: no trial or seed starts that would end after this (30m, 2h, "
        "1h30m); a run in flight ends",
    )
    seed: int = Field(0, ge=0, description="the sampler's seed, so a search is reproducible")
    learning_rate: list[float] = Field(
        default_factory=lambda: [1e-5, 1e-4], description="[low, high], sampled log-uniformly"
    )
    techniques: dict[TechniqueFamily, list[float] | None] = Field(
        default_factory=lambda: dict.fromkeys(TECHNIQUE_FAMILIES),
        description="family -> [low, high] of its parameter (freeze K, llrd D, reinit K, mixout P), null for "
        "the default range; standard takes none. A list of families takes their default ranges",
    )

    @field_validator("techniques", mode="before")
    @classmethod
    def _families_list(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if len(set(value)) != len(value):
                raise ValueError(f"technique families must be distinct, got {list(value)}")
            return dict.fromkeys(value)
        return value

    @field_validator("learning_rate")
    @classmethod
    def _lr_range(cls, bounds: list[float]) -> list[float]:
        if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
            raise ValueError(f"give [low, high] with 0 < low <= high, e.g. [1e-5, 1e-4]; got {bounds}")
        return bounds

    @field_validator("techniques")
    @classmethod
    def _ranges(cls, space: dict[str, list[float] | None]) -> dict[str, list[float] | None]:
        from biotune.techniques import parse_techniques

        if not space:
            raise ValueError(f"name at least one technique family ({', '.join(TECHNIQUE_FAMILIES)})")
        for family, bounds in space.items():
            if bounds is None:
                continue
            if family == "standard":
                raise ValueError("standard has no parameter: give it as `standard: null`")
            if len(bounds) != 2 or bounds[0] > bounds[1]:
                raise ValueError(f"{family}: give [low, high] with low <= high, got {bounds}")
            for value in bounds:
                if family in WHOLE_NUMBER_FAMILIES and value != int(value):
                    raise ValueError(f"{family}: K is a whole number of layers, got {value:g}")
                if (
                    family not in WHOLE_NUMBER_FAMILIES
                    and abs(value / FLOAT_STEP - round(value / FLOAT_STEP)) > 1e-6
                ):
                    raise ValueError(
                        f"{family}: give bounds in steps of {FLOAT_STEP:g} (e.g. 0.85), got {value:g}"
                    )
                shown = int(value) if family in WHOLE_NUMBER_FAMILIES else value
                parse_techniques([f"{family}:{shown}"])  # the technique's own bounds, with its message
        return space

    @model_validator(mode="after")
    def _pruner_settings(self) -> SearchConfig:
        if self.pruner == "threshold" and self.threshold is None:
            raise ValueError("pruner threshold needs `threshold:` (the dev score a trial must reach)")
        if self.pruner != "threshold" and self.threshold is not None:
            raise ValueError(f"threshold is for pruner threshold; the pruner is {self.pruner}: drop it")
        return self


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
    search: SearchConfig | None = Field(
        None, description="a recipe search (Optuna) instead of the technique and hyper-parameter grids"
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
        if self.search is not None:
            self._check_search()
        return self

    def _check_search(self) -> None:
        """A search samples the recipe itself: the grids that would also set it are refused."""
        if self.techniques != {STANDARD: []}:
            raise ValueError(
                "techniques: a search samples the technique; drop `techniques` and list the families to "
                "try under search.techniques"
            )
        if self.hyperparameters.given():
            raise ValueError(
                "hyperparameters: a search samples the learning rate; drop `hyperparameters` (give its "
                "range as search.learning_rate, and a fixed batch_size or epochs under train)"
            )
        for where, options in [
            ("train", self.train),
            *((f"overrides.{name}", values) for name, values in self.overrides.items()),
        ]:
            if "learning_rate" in options:
                raise ValueError(
                    f"{where}.learning_rate: a search samples the learning rate; give its range as "
                    "search.learning_rate instead"
                )

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
