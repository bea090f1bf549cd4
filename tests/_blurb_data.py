"""Where the tests find the real BLURB data, and what happens when it is not there.

The suite reads the data home the way biotune does: $BIOTUNE_DATA, else ../shared/data beside the
checkout, else the user data folder that `biotune data fetch` fills. A test that needs the data and finds
none is skipped with a reason starting with MISSING_REASON, and the suite ends with one line counting those
skips and naming the fetch command. Under CI (`CI=true`) the same test fails instead: a CI job that lost
its data must not go green by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from biotune.data.paths import DATA_ENV_VAR, user_data_home

MISSING_REASON = "BLURB data not found"
FETCH_COMMAND = "biotune data fetch --accept-licenses"
CHECKOUT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def find_blurb_data() -> Path:
    """The data home the suite reads (it may not exist)."""
    from_env = os.environ.get(DATA_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    if CHECKOUT_SHARED_DATA.is_dir():
        return CHECKOUT_SHARED_DATA
    return user_data_home()


SHARED_DATA = find_blurb_data()


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def need_blurb_data(path: Path = SHARED_DATA) -> Path:
    """Return `path` when it exists; else skip the test, or fail it under CI=true."""
    if path.exists():
        return path
    reason = f"{MISSING_REASON} at {path}"
    if running_in_ci():
        pytest.fail(
            f"{reason} (CI=true: a test that needs the data fails instead of skipping; "
            f"run `{FETCH_COMMAND}` in the job first)",
            pytrace=False,
        )
    pytest.skip(reason)


def _mentions_missing_data(report: Any) -> bool:
    longrepr = getattr(report, "longrepr", None)
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    # a skip reads "Skipped: <reason>"; a CI failure (pytrace=False) is the bare message
    return text.removeprefix("Skipped: ").startswith(MISSING_REASON)


def missing_data_summary(stats: dict[str, Iterable[Any]]) -> str | None:
    """The suite's last word on missing data: None when no test lacked it."""
    skipped = sum(_mentions_missing_data(r) for r in stats.get("skipped", []))
    failed = sum(_mentions_missing_data(r) for key in ("failed", "error") for r in stats.get(key, []))
    if failed:
        return f"{failed} tests FAILED for lack of BLURB data (CI=true); fetch it first: {FETCH_COMMAND}"
    if skipped:
        return f"{skipped} tests skipped for lack of BLURB data; fetch it with: {FETCH_COMMAND}"
    return None
