"""A run folder's layout and its files as typed models; no torch here, so the report and metrics use it.

    results.json                     RunResults: the run (dataset, model, config, baselines) and every seed
    seed-<N>/metrics.json            SeedMetricsFile: that seed's record, as in results.json
    seed-<N>/model/biotune_model.json   ModelCard: what a saved model needs to load and predict
    (a study's store)                StoredRunMetrics: what the store keeps of each run's results.json

Every writer builds these models and every reader gets them back (`read_results`, `read_model_card`), so a
key is named once, here. Each file carries `schema_version`; a file without one is version 0, the shape
biotune wrote before the field existed (the same keys), and reads as it is. A file of a newer version than
this biotune knows is refused with "upgrade", never half-read; a malformed one is one `RunFileError`
naming the file and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    field_serializer,
    model_serializer,
    model_validator,
)

from biotune import __version__
from biotune.errors import RunFileError

SCHEMA_VERSION = 1  # 1: schema_version added; the keys are version 0's
RESULTS_FILE = "results.json"
SEED_METRICS_FILE = "metrics.json"
BIOTUNE_MODEL_FILE = "biotune_model.json"


def seed_folder(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def seed_model_folder(run_dir: Path, seed: int) -> Path:
    return seed_folder(run_dir, seed) / "model"


class _Record(BaseModel):
    """A part of a file: a key it does not declare is an error (a malformed file, or a newer one)."""

    # NaN and infinity written as json.dumps writes them (a diverged loss), not as null
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")
    # keys biotune writes only where they apply (a CUDA device's name, a similarity task's zero-shot
    # baseline): left out when None, as they always have been
    omit_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_inapplicable(self, handler: Any) -> Any:
        data = handler(self)
        for key in self.omit_when_none:
            if key in data and data[key] is None:
                del data[key]
        return data


def _empty_as_none(value: Any) -> Any:
    """A part that did not happen (a failed seed's test scores) is written `{}`; it reads as None."""
    return None if value == {} else value


def _as_json(value: Any) -> Any:
    """A value as it reads back from the file: a scorer's figures may hold numpy scalars, sets, int keys."""

    def plain(item: Any) -> Any:
        if isinstance(item, set | frozenset):
            return sorted(item)
        if hasattr(item, "item"):  # numpy and torch scalars
            return item.item()
        raise TypeError(f"cannot write {type(item).__name__} to a run file")

    return json.loads(json.dumps(value, default=plain))


class SplitMetrics(_Record):
    """One split's scores: the core every metric has, and the metric's own figures (precision, spearman,
    per_class, negative_label...) as extra keys kept as they came (`model_extra`)."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")
    omit_when_none = frozenset({"dataset"})

    metric: str
    score: float
    n: int
    notes: list[str] = []
    dataset: str | None = None  # set when a registry dataset was scored (metrics.compute)

    @model_validator(mode="before")
    @classmethod
    def _figures_as_written(cls, data: Any) -> Any:
        return _as_json(data) if isinstance(data, dict) else data


OptionalSplit = Annotated[SplitMetrics | None, BeforeValidator(_empty_as_none)]


class EpochRecord(_Record):
    epoch: int
    train_loss: float | None  # None for the siamese epoch 0 (the untrained model, no training step)
    dev: float


class ThroughputRecord(_Record):
    """Seconds, real tokens and computed positions of training and evaluation, with their rates."""

    train_seconds: float
    train_tokens: int
    train_positions: int
    eval_seconds: float
    eval_tokens: int
    eval_positions: int
    train_tokens_per_s: float | None
    eval_tokens_per_s: float | None


class MemoryRecord(_Record):
    omit_when_none = frozenset({"peak_gpu_mb"})

    peak_rss_mb: float
    rss_scope: str  # what the peak covers: this seed, or the process so far
    peak_gpu_mb: float | None = None  # CUDA runs only


class DeviceRecord(_Record):
    """Where and how a run computed (DeviceRecipe.describe)."""

    omit_when_none = frozenset({"cuda", "native_bf16"})

    device: str
    precision: str
    threads: int
    name: str
    cuda: str | None = None  # CUDA devices
    native_bf16: bool | None = None  # CPUs


class FeaturizationCounts(_Record):
    examples: int
    features: int
    truncated: int
    split_into_windows: int


class Baselines(_Record):
    """Doing nothing, per split: the trivial predictor, and for similarity the untrained model's cosine."""

    omit_when_none = frozenset({"zero_shot_cosine"})

    trivial: dict[str, SplitMetrics]
    zero_shot_cosine: dict[str, SplitMetrics] | None = None


class Summary(_Record):
    """Mean, sample std (None over one seed), min, max of the primary score over the successful seeds."""

    split: Literal["dev", "test"]
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n_ok: int
    failed: int


class SeedResult(_Record):
    """One seed: its verdict, its epochs, where its compute went, and its dev/test scores."""

    seed: int
    status: Literal["ok", "failed"]
    error: str | None
    best_epoch: int | None
    train_seconds: float
    history: list[EpochRecord]
    throughput: ThroughputRecord | None = None  # not in files written before it was measured
    memory: Annotated[MemoryRecord | None, BeforeValidator(_empty_as_none)] = None
    dev: OptionalSplit = None
    test: OptionalSplit = None

    omit_when_none = frozenset({"throughput"})

    @field_serializer("memory", "dev", "test", mode="wrap")
    def _none_as_empty(self, value: Any, handler: Any) -> Any:
        return {} if value is None else handler(value)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def score(self, split: Literal["dev", "test"]) -> float | None:
        metrics = self.dev if split == "dev" else self.test
        return None if metrics is None else metrics.score


class _Versioned(_Record):
    """A file's top level: which schema it follows (see the module docstring)."""

    schema_version: int = SCHEMA_VERSION


class SeedMetricsFile(SeedResult, _Versioned):
    """seed-N/metrics.json: the seed's record of results.json, in a file of its own."""


class RunResults(_Versioned):
    """results.json: the run as configured and resolved, its baselines, every seed, and their summary."""

    dataset: str
    task_type: str
    labels: list[str]
    negative_label: str | None
    model: str
    techniques: list[str]
    technique_label: str
    # the resolved TrainConfig as JSON: TrainConfig (biotune.config) is its type, with torch behind it
    config: dict[str, Any]
    versions: dict[str, str]
    device: DeviceRecord | None = None  # not in files written before it was recorded
    featurization: dict[str, FeaturizationCounts]
    baseline: Baselines
    notes: list[str] = []
    seeds: list[SeedResult]
    summary: Summary
    summary_dev: Summary
    warnings: list[str]
    wall_seconds: float

    omit_when_none = frozenset({"device"})

    @property
    def own_files(self) -> bool:
        """Trained on a user's own files, not a registry dataset (its name is then the train file's)."""
        return not self.config.get("dataset")

    def to_dict(self) -> dict[str, Any]:
        """The content of results.json as plain JSON values."""
        return self.model_dump(mode="json")


class OnnxRecord(_Record):
    file: str
    opset: int
    inputs: list[str]
    quantization: str | None


class ModelCard(_Versioned):
    """biotune_model.json: a saved model's head, labels and encoding, and where it came from.

    What loading needs is required; where it came from defaults, for folders people assemble by hand."""

    omit_when_none = frozenset({"onnx"})

    head: str
    task_type: str
    labels: list[str]
    negative_label: str | None = None
    pooling: str = "cls"
    pair_encoding: str = "cross"
    max_length: int
    dataset: str | None = None
    seed: int | None = None
    techniques: list[str] = []
    config: dict[str, Any] = {}
    versions: dict[str, str] = {}
    onnx: OnnxRecord | None = None  # set by `export --format onnx`

    @property
    def own_files(self) -> bool:
        return not self.config.get("dataset")


class StoredRunMetrics(_Record):
    """What a study's store keeps of a one-seed run (its `metrics_json`), taken from its results.json.

    Everything defaults: a run that raised stores `{}`, and rows stored before a figure was recorded
    (throughput, memory, device, featurization) lack it; the report reads those from the run folder."""

    omit_when_none = frozenset({"throughput", "device", "pruned_after_epoch"})

    dev: OptionalSplit = None
    test: OptionalSplit = None
    best_epoch: int | None = None
    train_seconds: float | None = None
    resolved: dict[
        str, Any
    ] = {}  # the TrainConfig values the registry filled in (study.runners.RESOLVED_KEYS)
    baseline: Baselines | None = None
    technique_label: str | None = None
    throughput: ThroughputRecord | None = None
    memory: Annotated[MemoryRecord | None, BeforeValidator(_empty_as_none)] = None
    device: Annotated[DeviceRecord | None, BeforeValidator(_empty_as_none)] = None
    featurization: dict[str, FeaturizationCounts] = {}
    wall_seconds: float | None = None
    history: list[EpochRecord] = []
    pruned_after_epoch: int | None = None  # a search's pruned run: the epoch after which it was stopped

    @field_serializer("dev", "test", "memory", mode="wrap")
    def _none_as_empty(self, value: Any, handler: Any) -> Any:
        return {} if value is None else handler(value)

    @classmethod
    def from_results(cls, results: RunResults, resolved_keys: tuple[str, ...]) -> StoredRunMetrics:
        seed = results.seeds[0]
        return cls(
            dev=seed.dev,
            test=seed.test,
            best_epoch=seed.best_epoch,
            train_seconds=seed.train_seconds,
            resolved={key: results.config.get(key) for key in resolved_keys},
            baseline=results.baseline,
            technique_label=results.technique_label,
            throughput=seed.throughput,
            memory=seed.memory,
            device=results.device,
            featurization=results.featurization,
            wall_seconds=results.wall_seconds,
            history=seed.history,
        )


File = TypeVar("File", bound=_Versioned)


def read_results(run_dir: Path) -> RunResults:
    """A run folder's results.json."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise RunFileError(
            Path(run_dir),
            None,
            f"not a run folder (no {RESULTS_FILE})",
            "give a folder `biotune train` wrote",
        )
    return read_file(path, RunResults)


def read_model_card(folder: Path) -> ModelCard:
    """A saved model folder's biotune_model.json."""
    path = Path(folder) / BIOTUNE_MODEL_FILE
    if not path.is_file():
        raise RunFileError(Path(folder), None, f"not a biotune model folder (no {BIOTUNE_MODEL_FILE})")
    return read_file(path, ModelCard)


def read_file(path: Path, model: type[File]) -> File:
    """One of the run folder's files as its model; any problem is one RunFileError naming file and field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunFileError(
            path, exc.lineno, f"not valid JSON ({exc.msg})", "was the run interrupted while writing? rerun it"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(path, None, f"cannot read it: {exc}") from exc
    if not isinstance(data, dict):
        raise RunFileError(path, None, f"not a biotune {path.name} (a JSON object expected)")
    version = data.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RunFileError(path, None, f"schema_version is {version!r}, not a version number")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            path,
            None,
            f"written by a newer biotune (schema_version {version}; biotune {__version__} reads versions "
            f"0 to {SCHEMA_VERSION})",
            "upgrade biotune to read it",
        )
    try:
        return model.model_validate({**data, "schema_version": version})
    except ValidationError as exc:
        raise RunFileError(
            path,
            None,
            _problems(exc),
            f"this {path.name} was not written by biotune {__version__} or was edited; restore or rerun it",
        ) from None


def _problems(exc: ValidationError, shown: int = 3) -> str:
    problems = []
    for error in exc.errors()[:shown]:
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field {field!r}")
        elif error["type"] == "missing":
            problems.append(f"field {field!r} is missing")
        else:
            problems.append(f"field {field!r}: {error['msg']}")
    more = exc.error_count() - shown
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def write_file(path: Path, content: _Versioned) -> None:
    """Write atomically (a reader never sees half a file), stamped with the current schema version."""
    stamped = content.model_copy(update={"schema_version": SCHEMA_VERSION})
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(stamped.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)
