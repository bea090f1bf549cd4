"""Expand a study into its runs (the product of its lists) and validate every run before any starts.

A run's id is a stable hash of what defines its result: the validated training options that differ
from their defaults (model, dataset, techniques, hyper-parameters, shared options), the technique's
label and the seed. Where the files live (`data_dir`) and which device runs it are left out, so a
study resumes on another machine.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from biotune.config import TrainConfig, format_validation_error
from biotune.data.registry import get_spec
from biotune.errors import ConfigError
from biotune.study.spec import HYPERPARAMETER_KEYS, StudyConfig

RUN_ID_LENGTH = 16
HYPERPARAMETER_LABELS = {"learning_rate": "lr", "batch_size": "batch", "epochs": "epochs"}
# tracking only observes a run: turning it on for a resume keeps every finished run
NOT_IN_IDENTITY = ("data_dir", "device", "output", "seeds", "report_to")


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: one model, dataset, technique, hyper-parameter setting and seed."""

    position: int
    model: str
    dataset: str
    technique: str
    seed: int
    config: TrainConfig

    @property
    def techniques(self) -> tuple[str, ...]:
        return tuple(self.config.techniques)

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The grid's hyper-parameters; None means the dataset's registry default."""
        return {key: getattr(self.config, key) for key in HYPERPARAMETER_KEYS}

    @property
    def run_id(self) -> str:
        return run_id_of(self.config, self.technique)

    def config_json(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


def run_id_of(config: TrainConfig, technique: str) -> str:
    identity = config.model_dump(mode="json", exclude_defaults=True, exclude=set(NOT_IN_IDENTITY))
    # precision is part of the result: `auto` counts as what it runs here; fp32 stays out, so the ids of
    # runs recorded before precision existed (all fp32) are unchanged
    precision = identity_precision(config)
    identity.pop("precision", None)
    if precision != "fp32":
        identity["precision"] = precision
    identity["seed"] = config.seeds[0]
    identity["technique_label"] = technique
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]


def identity_precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return config.precision
    from biotune.device import resolve_device, resolve_precision

    try:
        return resolve_precision("auto", resolve_device(config.device))
    except ConfigError:  # a device this machine lacks: the study fails on it at validation anyway
        return "auto"


def hyperparameter_settings(study: StudyConfig) -> list[dict[str, Any]]:
    given = study.hyperparameters.given()
    keys = list(given)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(given[k] for k in keys))]


def expand_grid(study: StudyConfig, source: str = "study") -> list[RunSpec]:
    """Every run of the study in a stable order (model, dataset, technique, hyper-parameters, seed).

    Each run's TrainConfig is built here, so a bad technique, an unknown dataset or a bad value fails
    for the whole study at once, before anything runs; all distinct problems come in one ConfigError.
    """
    problems: list[str] = []
    canonical: dict[str, str] = {}
    for name in study.datasets:
        try:
            canonical[name] = get_spec(name).name
        except ConfigError as exc:
            problems.append(f"datasets: {exc}")
    if len(set(canonical.values())) != len(canonical):
        problems.append(f"datasets: the same dataset is named twice: {study.datasets}")

    runs: list[RunSpec] = []
    combos = (
        (model, dataset, technique, setting, seed)
        for model, dataset, technique, setting in itertools.product(
            study.models, study.datasets, study.techniques.items(), hyperparameter_settings(study)
        )
        for seed in study.seeds_for(dataset)
    )
    for model, dataset, (label, techniques), setting, seed in combos:
        if dataset not in canonical:
            continue
        values = {
            **study.options_for(dataset),
            **setting,
            "model": model,
            "dataset": canonical[dataset],
            "techniques": techniques,
            "seeds": [seed],
        }
        try:
            config = TrainConfig.model_validate(values)
        except ValidationError as exc:
            message = format_validation_error(exc, f"{source}: technique {label!r}")
            if message not in problems:
                problems.append(message)
            continue
        runs.append(RunSpec(len(runs), model, canonical[dataset], label, seed, config))
    if problems:
        raise ConfigError("\n".join(problems))
    return runs


def setting_text(hyperparameters: dict[str, Any], resolved: dict[str, Any] | None = None) -> str:
    """`lr 3e-05, batch 16*, epochs default`: a registry default shows its resolved value with a `*`."""

    def shown(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    parts = []
    for key, label in HYPERPARAMETER_LABELS.items():
        value, fallback = hyperparameters.get(key), (resolved or {}).get(key)
        if value is not None:
            parts.append(f"{label} {shown(value)}")
        elif fallback is not None:
            parts.append(f"{label} {shown(fallback)}*")
        else:
            parts.append(f"{label} default")
    return ", ".join(parts)
