"""Where the BLURB data lives: --data-dir, else $BIOTUNE_DATA, else ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

from biotune.errors import ConfigError

DATA_ENV_VAR = "BIOTUNE_DATA"
# src/biotune/data/paths.py -> parents[3] is the repository checkout; the data sits beside it.
CHECKOUT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def resolve_data_dir(explicit: Path | str | None = None) -> Path:
    if explicit is not None:
        return _existing(Path(explicit), "--data-dir")
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return _existing(Path(from_env), f"${DATA_ENV_VAR}")
    for candidate in (Path.cwd().parent / "shared" / "data", CHECKOUT_DATA_DIR):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "cannot find the BLURB data folder: pass --data-dir DIR or set "
        f"{DATA_ENV_VAR}=DIR (the folder holding BC5CDR-chem/, chemprot/, pubmedqa/ ...); "
        f"looked in {Path.cwd().parent / 'shared' / 'data'} and {CHECKOUT_DATA_DIR}"
    )


def _existing(path: Path, given_by: str) -> Path:
    path = path.expanduser()
    if not path.is_dir():
        raise ConfigError(f"{given_by} points to {path}, which is not a folder; give the BLURB data folder")
    return path
