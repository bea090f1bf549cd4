"""Checks over the whole grid before the first run starts, each done once per distinct value.

Errors (a model that cannot be read, a technique the model cannot take, no data folder) stop the
study with one message listing them all. A data file that is absent is a warning: that dataset's
runs will fail with the reader's message and the rest of the study goes on.
"""

from __future__ import annotations

from pathlib import Path

from biotune.data.loading import split_path
from biotune.data.paths import resolve_data_dir
from biotune.data.registry import get_spec
from biotune.errors import BiotuneError, ConfigError
from biotune.study.grid import RunSpec


def check_runs(runs: list[RunSpec]) -> list[str]:
    """Raise one ConfigError listing every problem; return warnings about data files that are absent."""
    problems: list[str] = []
    problems += _check_tracking(runs)
    problems += _check_models_and_techniques(runs)
    data_problems, warnings = _check_data(runs)
    problems += data_problems
    if problems:
        raise ConfigError("the study cannot start:\n" + "\n".join(f"  {p}" for p in problems))
    return warnings


def _check_tracking(runs: list[RunSpec]) -> list[str]:
    from biotune.tracking import check_available

    backends = list(dict.fromkeys(name for run in runs for name in run.config.report_to))
    try:
        check_available(backends)
    except ConfigError as exc:
        return [str(exc)]
    return []


def _check_models_and_techniques(runs: list[RunSpec]) -> list[str]:
    from biotune.runs import num_encoder_layers
    from biotune.techniques import parse_techniques, validate_plan

    problems: list[str] = []
    layers: dict[str, int | None] = {}
    checked: set[tuple[str, tuple[str, ...]]] = set()
    for run in runs:
        model = run.config.model
        if model not in layers:
            try:
                layers[model] = num_encoder_layers(model, run.config.trust_remote_code)
            except BiotuneError as exc:
                layers[model] = None
                problems.append(f"model {model!r}: {exc}")
            except (OSError, ValueError) as exc:  # transformers: not found offline, not a model folder
                layers[model] = None
                problems.append(f"model {model!r}: cannot read its configuration ({exc})")
        key = (model, run.techniques)
        count = layers[model]
        if count is None or key in checked:
            continue
        checked.add(key)
        try:
            validate_plan(parse_techniques(list(run.techniques)), count)
        except (BiotuneError, ValueError) as exc:
            problems.append(f"technique {run.technique!r} on {model!r}: {exc}")
    return problems


def _check_data(runs: list[RunSpec]) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    seen: set[tuple[str, Path | None]] = set()
    for run in runs:
        key = (run.dataset, run.config.data_dir)
        if key in seen:
            continue
        seen.add(key)
        try:
            home = resolve_data_dir(run.config.data_dir)
        except ConfigError as exc:
            message = str(exc)
            if message not in problems:
                problems.append(message)
            continue
        spec = get_spec(run.dataset)
        absent = [split for split in spec.splits if not split_path(spec, split, home).is_file()]
        if absent:
            warnings.append(
                f"{spec.name}: {', '.join(absent)} split(s) missing under {home}; its runs will fail "
                "(data/SOURCES.md says which files may be absent)"
            )
    return problems, warnings
