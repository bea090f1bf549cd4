"""A run folder's layout (results.json, seed-N/, seed-N/model/) and reading its results; no torch here, so
the report and the metrics can use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biotune.errors import ConfigError

RESULTS_FILE = "results.json"


def seed_folder(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed-{seed}"


def seed_model_folder(run_dir: Path, seed: int) -> Path:
    return seed_folder(run_dir, seed) / "model"


def read_results(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_FILE
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{run_dir}: not a run folder (no {RESULTS_FILE}); give a folder written by `biotune train`"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON ({exc.msg}); was the run interrupted while writing?"
        ) from exc
    if not isinstance(results, dict) or not isinstance(results.get("seeds"), list):
        raise ConfigError(f"{path}: not a biotune results file (no list of seeds)")
    return results
