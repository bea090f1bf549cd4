"""Run-folder files of a shape a test chooses, built from real ones rather than written by hand.

fixtures/run-v0/ is a real run folder's files as `biotune study` wrote them (BIOSSES, one seed, before
`schema_version` existed: version 0), less the weights, the predictions and the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biotune.run_folder import (
    RESULTS_FILE,
    ModelCard,
    RunResults,
    SeedResult,
    SplitMetrics,
    Summary,
    read_model_card,
    read_results,
    write_file,
)

FIXTURE_RUN = Path(__file__).parent / "fixtures" / "run-v0"
FIXTURE_MODEL = FIXTURE_RUN / "seed-1" / "model"


def real_results(**changes: Any) -> RunResults:
    """The fixture's results.json, with `changes` (models, not dicts) put in."""
    return read_results(FIXTURE_RUN).model_copy(update=changes)


def real_card(**changes: Any) -> ModelCard:
    return read_model_card(FIXTURE_MODEL).model_copy(update=changes)


def split(score: float | None) -> SplitMetrics | None:
    """The fixture's dev scores (Pearson on BIOSSES) with another score; None for a split never scored."""
    if score is None:
        return None
    dev = read_results(FIXTURE_RUN).seeds[0].dev
    assert dev is not None
    return dev.model_copy(update={"score": score})


def seed_result(
    seed: int,
    status: str = "ok",
    dev: float | None = None,
    test: float | None = None,
    error: str | None = None,
    best_epoch: int | None = 1,
) -> SeedResult:
    return (
        read_results(FIXTURE_RUN)
        .seeds[0]
        .model_copy(
            update={
                "seed": seed,
                "status": status,
                "error": error,
                "best_epoch": best_epoch,
                "dev": split(dev),
                "test": split(test),
            }
        )
    )


def summary(mean: float | None, split: str = "test", n_ok: int = 1, failed: int = 0) -> Summary:
    return Summary(split=split, mean=mean, std=None, min=mean, max=mean, n_ok=n_ok, failed=failed)


def write_results(folder: Path, results: RunResults) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_file(folder / RESULTS_FILE, results)
    return folder
