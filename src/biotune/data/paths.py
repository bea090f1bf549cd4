"""Where the BLURB data lives (the data home).

Reading: --data-dir, else $BIOTUNE_DATA, else ../shared/data (beside the working directory, then beside the
checkout), else the user data folder that `biotune data fetch` fills by default
(platformdirs.user_data_dir("biotune"), e.g. ~/.local/share/biotune on Linux).
Fetching (`biotune data fetch --to`): the same order, except that a folder named by --to or $BIOTUNE_DATA is
created when it does not exist yet, and the user data folder is the default when nothing else is found.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

from biotune.errors import ConfigError

DATA_ENV_VAR = "BIOTUNE_DATA"
# src/biotune/data/paths.py -> parents[3] is the repository checkout; the data sits beside it.
CHECKOUT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"
FETCH_HINT = "run `biotune data fetch [DATASET...]` (add --mirror URL|DIR to copy from a local mirror)"


def user_data_home() -> Path:
    """Where `biotune data fetch` puts BLURB when no other data home is named or found."""
    return Path(user_data_dir("biotune", appauthor=False))


def _shared_candidates() -> tuple[Path, ...]:
    return (Path.cwd().parent / "shared" / "data", CHECKOUT_DATA_DIR)


def resolve_data_dir(explicit: Path | str | None = None) -> Path:
    if explicit is not None:
        return _existing(Path(explicit), "--data-dir")
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return _existing(Path(from_env), f"${DATA_ENV_VAR}")
    for candidate in (*_shared_candidates(), user_data_home()):
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(path) for path in (*_shared_candidates(), user_data_home()))
    raise ConfigError(
        f"cannot find the BLURB data folder (looked in {looked}). Two ways out: {FETCH_HINT}, which "
        f"downloads and verifies it into {user_data_home()}; or pass --data-dir DIR (or set "
        f"{DATA_ENV_VAR}=DIR) to point at a copy that holds BC5CDR-chem/, chemprot/, pubmedqa/ ..."
    )


def fetch_home(explicit: Path | str | None = None) -> tuple[Path, str]:
    """The folder `data fetch` fills, and what chose it: --to, $BIOTUNE_DATA, ../shared/data, user folder."""
    if explicit is not None:
        return Path(explicit).expanduser(), "--to"
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser(), f"${DATA_ENV_VAR}"
    for candidate in _shared_candidates():
        if candidate.is_dir():
            return candidate, "../shared/data"
    return user_data_home(), "the user data folder"


def _existing(path: Path, given_by: str) -> Path:
    path = path.expanduser()
    if not path.is_dir():
        raise ConfigError(f"{given_by} points to {path}, which is not a folder; give the BLURB data folder")
    return path
