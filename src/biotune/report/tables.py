"""The numbers of a study report, computed from stored runs (no I/O here).

Protocol (Gu et al.): per model x dataset x technique, the hyper-parameter setting with the best
mean dev score over its successful seeds is selected, and the test scores of that setting are
reported. Means and sample standard deviations (n - 1) cover every finished seed of the setting,
failed ones included: a seed judged failed is a fine-tuning outcome, and leaving it out would hide
the instability the study measures. Runs that raised (a bug, missing data) have no score; they are
counted apart as errors, and runs still queued or running as pending. A setting with a seed that a
recipe search pruned is left out: the search stopped it, so its seeds are no full measurement.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from biotune.study.records import RunRecord, RunStatus, best_dev_run

STANDARD = "standard"


@dataclass(frozen=True)
class Stats:
    """Mean and sample std of the scores there are; std is None for fewer than two (no spread to measure)."""

    n: int
    mean: float | None
    std: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        scores = list(values)
        if not scores:
            return cls(0, None, None)
        std = statistics.stdev(scores) if len(scores) > 1 else None
        return cls(len(scores), statistics.fmean(scores), std)


def _scored(records: Iterable[RunRecord], split: str, only_ok: bool = False) -> list[float]:
    wanted = (RunStatus.DONE,) if only_ok else (RunStatus.DONE, RunStatus.FAILED)
    values = []
    for record in records:
        score = record.dev_score if split == "dev" else record.test_score
        if record.status in wanted and not record.crashed and score is not None:
            values.append(score)
    return values


@dataclass(frozen=True)
class SettingCandidate:
    """One hyper-parameter setting of a model x dataset x technique, and its selection score."""

    hyperparameters: dict[str, Any]
    runs: tuple[RunRecord, ...]
    mean_dev_ok: float | None
    selected: bool


@dataclass(frozen=True)
class CellSummary:
    """A model x dataset x technique at its selected hyper-parameter setting."""

    model: str
    dataset: str
    technique: str
    techniques: tuple[str, ...]
    hyperparameters: dict[str, Any]
    resolved: dict[str, Any]
    candidates: tuple[SettingCandidate, ...]
    runs: tuple[RunRecord, ...]
    dev: Stats
    test: Stats
    finished: int
    failed: int
    crashed: int
    pending: int

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None

    @property
    def seed_scores(self) -> list[tuple[int, float | None, bool]]:
        """(seed, test score, failed) of every finished, scored run of the selected setting."""
        return [
            (r.seed, r.test_score, r.status == RunStatus.FAILED)
            for r in sorted(self.runs, key=lambda r: r.seed)
            if r.finished and not r.crashed
        ]


def _grouped(records: Iterable[RunRecord], key: Any) -> dict[Any, list[RunRecord]]:
    groups: dict[Any, list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (r.position, r.run_id)):
        groups.setdefault(key(record), []).append(record)
    return groups


def select_setting(groups: Sequence[list[RunRecord]]) -> int:
    """Index of the setting with the best mean dev score over its ok seeds.

    Ties go to the setting that comes first in the grid. If no setting has an ok seed yet, the best
    mean dev over all scored seeds decides; if nothing has a dev score, the first setting.
    """

    def best_by(only_ok: bool) -> int | None:
        means = [Stats.of(_scored(group, "dev", only_ok)).mean for group in groups]
        ranked = [(mean, -index) for index, mean in enumerate(means) if mean is not None]
        return -max(ranked)[1] if ranked else None

    chosen = best_by(only_ok=True)
    if chosen is None:
        chosen = best_by(only_ok=False)
    return 0 if chosen is None else chosen


def without_pruned(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Every run except those of a setting that has a pruned run (a search stopped that trial)."""
    records = list(records)

    def setting(r: RunRecord) -> tuple[str, str, str, str]:
        return (r.model, r.dataset, r.technique, r.setting_key)

    pruned = {setting(r) for r in records if r.status == RunStatus.PRUNED}
    return [r for r in records if setting(r) not in pruned]


def summarize_cells(records: Iterable[RunRecord]) -> list[CellSummary]:
    """One summary per model x dataset x technique, in grid order; pruned trials' settings left out."""
    cells = []
    for (model, dataset, technique), group in _grouped(
        without_pruned(records), lambda r: (r.model, r.dataset, r.technique)
    ).items():
        settings = list(_grouped(group, lambda r: r.setting_key).values())
        chosen = select_setting(settings)
        candidates = tuple(
            SettingCandidate(
                runs[0].hyperparameters,
                tuple(runs),
                Stats.of(_scored(runs, "dev", True)).mean,
                index == chosen,
            )
            for index, runs in enumerate(settings)
        )
        runs = settings[chosen]
        resolved = next((r.figures.resolved for r in runs if r.figures.resolved), {})
        cells.append(
            CellSummary(
                model=model,
                dataset=dataset,
                technique=technique,
                techniques=runs[0].techniques,
                hyperparameters=runs[0].hyperparameters,
                resolved=resolved,
                candidates=candidates,
                runs=tuple(runs),
                dev=Stats.of(_scored(runs, "dev")),
                test=Stats.of(_scored(runs, "test")),
                finished=sum(1 for r in runs if r.finished and not r.crashed),
                failed=sum(1 for r in runs if r.status == RunStatus.FAILED and not r.crashed),
                crashed=sum(1 for r in runs if r.crashed),
                pending=sum(1 for r in runs if not r.finished),
            )
        )
    return cells


@dataclass(frozen=True)
class BestTechnique:
    model: str
    dataset: str
    best: CellSummary
    compared: int


def best_techniques(cells: Sequence[CellSummary]) -> list[BestTechnique]:
    """Per model x dataset, the technique with the highest mean test score (ties: the lower std)."""
    rows = []
    for (model, dataset), group in _group_cells(cells, lambda c: (c.model, c.dataset)).items():
        scored = [c for c in group if c.test.mean is not None]
        if scored:
            best = max(scored, key=lambda c: (c.test.mean, -(c.test.std or 0.0)))
            rows.append(BestTechnique(model, dataset, best, len(scored)))
    return rows


@dataclass(frozen=True)
class BlurbRow:
    model: str
    technique: str
    score: Any  # biotune.metrics.BlurbScore


def blurb_rows(cells: Sequence[CellSummary]) -> list[BlurbRow]:
    """BLURB score per model x technique from mean test scores (None where task types are missing)."""
    from biotune.metrics import blurb_score

    rows = []
    for (model, technique), group in _group_cells(cells, lambda c: (c.model, c.technique)).items():
        scores = {c.dataset: c.test.mean for c in group if c.test.mean is not None}
        rows.append(BlurbRow(model, technique, blurb_score(scores)))
    return rows


@dataclass(frozen=True)
class InstabilityRow:
    cell: CellSummary
    reference: CellSummary

    @property
    def std_change(self) -> float | None:
        a, b = self.cell.test.std, self.reference.test.std
        return None if a is None or b is None else a - b

    @property
    def failure_rate_change(self) -> float | None:
        a, b = self.cell.failure_rate, self.reference.failure_rate
        return None if a is None or b is None else a - b

    @property
    def mean_change(self) -> float | None:
        a, b = self.cell.test.mean, self.reference.test.mean
        return None if a is None or b is None else a - b


def reference_technique(cells: Sequence[CellSummary]) -> str | None:
    """`standard` by name; else the one technique that applies nothing; else none."""
    labels = {c.technique for c in cells}
    if STANDARD in labels:
        return STANDARD
    plain = {c.technique for c in cells if not c.techniques}
    return plain.pop() if len(plain) == 1 else None


def instability_rows(cells: Sequence[CellSummary]) -> list[InstabilityRow]:
    """Each technique's test std, failure rate and mean next to the reference's, same model and dataset."""
    reference = reference_technique(cells)
    if reference is None:
        return []
    by_key = {(c.model, c.dataset, c.technique): c for c in cells}
    rows = []
    for cell in cells:
        base = by_key.get((cell.model, cell.dataset, reference))
        if cell.technique != reference and base is not None and (cell.finished or base.finished):
            rows.append(InstabilityRow(cell, base))
    return rows


def _group_cells(cells: Iterable[CellSummary], key: Any) -> dict[Any, list[CellSummary]]:
    groups: dict[Any, list[CellSummary]] = {}
    for cell in cells:
        groups.setdefault(key(cell), []).append(cell)
    return groups


def status_counts(records: Iterable[RunRecord]) -> dict[RunStatus, int]:
    counts = dict.fromkeys(RunStatus, 0)
    for record in records:
        counts[record.status] += 1
    return counts


@dataclass(frozen=True)
class BestModel:
    """Per model x dataset: the best-dev seed of the cell whose mean dev score is best."""

    cell: CellSummary
    run: RunRecord


def best_models(cells: Sequence[CellSummary]) -> list[BestModel]:
    """The one model to export or predict with, per model x dataset.

    A mean over seeds picks the technique and setting (one lucky seed of an unstable technique does not);
    that cell's best-dev seed is the model. Cells are at their selected hyper-parameters already.
    """
    by_pair: dict[tuple[str, str], list[CellSummary]] = {}
    for cell in cells:
        by_pair.setdefault((cell.model, cell.dataset), []).append(cell)
    chosen = []
    for pair_cells in by_pair.values():
        cell = pair_cells[select_setting([list(c.runs) for c in pair_cells])]
        best = best_dev_run(cell.runs)
        if best is not None:
            chosen.append(BestModel(cell, best))
    return chosen
