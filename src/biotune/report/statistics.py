"""How each technique compares with `standard`, in numbers and in sentences (no I/O here).

For a technique and `standard` on the same model, dataset and hyper-parameter setting, over the test scores
of every finished seed (failed seeds included, as in the report's tables):

- the difference in mean test score, technique minus standard, with a 95% bootstrap confidence interval
  (`scipy.stats.bootstrap`, the two samples resampled independently, percentile method, seeded so a report
  regenerates to the same numbers; the percentile interval stays defined when every seed scores the same,
  where BCa's is not);
- Brown-Forsythe's test of equal variances (`scipy.stats.levene` with center="median", robust to the
  skew a failed seed brings);
- the difference in failure rate, with Fisher's exact test on the 2 x 2 table of failed and not failed
  seeds (`scipy.stats.fisher_exact`, two-sided).

`findings` turns those numbers into sentences that claim only what they support: a change in mean when
the interval excludes 0, a change in spread or failure rate when its test's p is below 0.05. The p-values
are not corrected for the number of comparisons, and the sentences say so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from biotune.report.tables import CellSummary, reference_technique
from biotune.study.records import RunRecord, RunStatus

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_SEEDS = 5  # per cell; with fewer the findings say that the evidence is thin
RESAMPLES = 9999
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class SeedSample:
    """One cell's finished seeds: their test scores (failed seeds included) and how many failed."""

    scores: tuple[float, ...]
    failed: int
    finished: int

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.scores)) if self.scores else None

    @property
    def std(self) -> float | None:
        """Sample std (n - 1), as the report's tables; 0.0 for one score."""
        if not self.scores:
            return None
        return float(np.std(self.scores, ddof=1)) if self.n > 1 else 0.0

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


@dataclass(frozen=True)
class ScoreComparison:
    """A technique's seeds against the reference's: the three tests' numbers (None where undefined)."""

    technique: SeedSample
    reference: SeedSample
    mean_difference: float | None
    mean_interval: tuple[float, float] | None
    levene_p: float | None
    fisher_p: float | None

    @property
    def failure_rate_difference(self) -> float | None:
        a, b = self.technique.failure_rate, self.reference.failure_rate
        return None if a is None or b is None else a - b

    @property
    def thin(self) -> bool:
        return min(self.technique.n, self.reference.n) < MIN_SEEDS

    @property
    def mean_changed(self) -> bool:
        return self.mean_interval is not None and not self.mean_interval[0] <= 0.0 <= self.mean_interval[1]

    @property
    def spread_changed(self) -> bool:
        return self.levene_p is not None and self.levene_p < ALPHA

    @property
    def failures_changed(self) -> bool:
        return self.fisher_p is not None and self.fisher_p < ALPHA


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def mean_difference_interval(
    technique: Sequence[float], reference: Sequence[float], seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """95% bootstrap interval of mean(technique) - mean(reference); None with fewer than 2 seeds a side."""
    if min(len(technique), len(reference)) < 2:
        return None
    result = stats.bootstrap(
        (np.asarray(technique, dtype=float), np.asarray(reference, dtype=float)),
        _mean_difference,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def brown_forsythe_p(technique: Sequence[float], reference: Sequence[float]) -> float | None:
    """p of Levene's test with median centring (Brown-Forsythe); None below 2 seeds or with no spread."""
    if min(len(technique), len(reference)) < 2:
        return None
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # both samples constant: 0 / 0
        result = stats.levene(technique, reference, center="median")
    return _finite_or_none(result.pvalue)


def fisher_failure_p(technique: SeedSample, reference: SeedSample) -> float | None:
    """Two-sided p of Fisher's exact test on failed / not failed; None when a side has no finished seed."""
    if not technique.finished or not reference.finished:
        return None
    table = [
        [technique.failed, technique.finished - technique.failed],
        [reference.failed, reference.finished - reference.failed],
    ]
    return _finite_or_none(stats.fisher_exact(table).pvalue)


def compare(technique: SeedSample, reference: SeedSample) -> ScoreComparison:
    mean_t, mean_r = technique.mean, reference.mean
    return ScoreComparison(
        technique=technique,
        reference=reference,
        mean_difference=None if mean_t is None or mean_r is None else mean_t - mean_r,
        mean_interval=mean_difference_interval(technique.scores, reference.scores),
        levene_p=brown_forsythe_p(technique.scores, reference.scores),
        fisher_p=fisher_failure_p(technique, reference),
    )


@dataclass(frozen=True)
class TechniqueComparison:
    """One technique against the reference on one model, dataset and hyper-parameter setting."""

    model: str
    dataset: str
    technique: str
    reference: str
    hyperparameters: dict[str, Any]
    resolved: dict[str, Any]
    numbers: ScoreComparison


def seed_sample(runs: Sequence[RunRecord]) -> SeedSample:
    """A setting's finished seeds: the scored ones' test scores, and failed / finished as the tables count
    them (a seed that diverged before it was scored still counts as failed)."""
    finished = [r for r in runs if r.finished and not r.crashed]
    scores = tuple(float(r.test_score) for r in finished if r.test_score is not None)
    failed = sum(1 for r in finished if r.status == RunStatus.FAILED)
    return SeedSample(scores, failed, len(finished))


def technique_comparisons(cells: Sequence[CellSummary]) -> list[TechniqueComparison]:
    """Each technique at its selected setting against the reference's runs at that same setting.

    The reference is `standard` (or the one technique that applies nothing). A technique whose selected
    hyper-parameters the reference never ran is not compared: a difference would mix the two.
    """
    reference = reference_technique(cells)
    if reference is None:
        return []
    references = {(c.model, c.dataset): c for c in cells if c.technique == reference}
    comparisons = []
    for cell in cells:
        base = references.get((cell.model, cell.dataset))
        if cell.technique == reference or base is None:
            continue
        same_setting = [c for c in base.candidates if c.hyperparameters == cell.hyperparameters]
        if not same_setting:
            continue
        numbers = compare(seed_sample(cell.runs), seed_sample(same_setting[0].runs))
        if numbers.technique.n and numbers.reference.n:
            comparisons.append(
                TechniqueComparison(
                    cell.model,
                    cell.dataset,
                    cell.technique,
                    reference,
                    cell.hyperparameters,
                    cell.resolved,
                    numbers,
                )
            )
    return comparisons


def format_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def _p_text(name: str, p: float | None) -> str:
    if p is None:
        return f"{name} test undefined"
    formatted = format_p(p)
    return f"{name} p {formatted}" if formatted.startswith("<") else f"{name} p = {formatted}"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _effects(comparison: TechniqueComparison) -> list[tuple[bool, str]]:
    """(helped, clause) for each change the numbers support."""
    numbers, reference = comparison.numbers, comparison.reference
    t, r = numbers.technique, numbers.reference
    effects: list[tuple[bool, str]] = []
    if numbers.mean_changed and numbers.mean_interval is not None and numbers.mean_difference is not None:
        low, high = numbers.mean_interval
        helped = numbers.mean_difference > 0
        effects.append(
            (
                helped,
                f"{'raised' if helped else 'lowered'} the mean test score from {r.mean:.1f} ({reference}) "
                f"to {t.mean:.1f} (difference {numbers.mean_difference:+.1f}, "
                f"95% CI {low:+.1f} to {high:+.1f})",
            )
        )
    if numbers.spread_changed and t.std is not None and r.std is not None:
        helped = t.std < r.std
        effects.append(
            (
                helped,
                f"{'lowered' if helped else 'raised'} the seed std from {r.std:.1f} to {t.std:.1f} "
                f"({_p_text('Levene', numbers.levene_p)})",
            )
        )
    if numbers.failures_changed and numbers.failure_rate_difference is not None:
        helped = numbers.failure_rate_difference < 0
        effects.append(
            (
                helped,
                f"{'lowered' if helped else 'raised'} the failure rate from {_rate(r.failure_rate)} "
                f"({r.failed}/{r.finished}) to {_rate(t.failure_rate)} ({t.failed}/{t.finished}) "
                f"({_p_text('Fisher', numbers.fisher_p)})",
            )
        )
    return effects


def _where(comparison: TechniqueComparison, several_models: bool) -> str:
    return f"on {comparison.dataset}" + (f" with {comparison.model}" if several_models else "")


def finding(comparison: TechniqueComparison, several_models: bool = False) -> str:
    """One sentence about one comparison, claiming only what the interval and the tests support."""
    numbers, name, reference = comparison.numbers, comparison.technique, comparison.reference
    t, r = numbers.technique, numbers.reference
    where = _where(comparison, several_models)
    if numbers.thin:
        return (
            f"{name} {where}: {t.n} seeds against {r.n} for {reference}, fewer than {MIN_SEEDS} per cell, "
            f"so the evidence is thin and no finding is claimed (mean {t.mean:.1f} against {r.mean:.1f}, "
            f"std {t.std:.1f} against {r.std:.1f})."
        )
    effects = _effects(comparison)
    if not effects:
        interval = numbers.mean_interval
        interval_text = "" if interval is None else f", 95% CI {interval[0]:+.1f} to {interval[1]:+.1f}"
        return (
            f"{name} {where}: no difference from {reference} that the numbers support "
            f"(mean difference {numbers.mean_difference:+.1f}{interval_text}; std {t.std:.1f} against "
            f"{r.std:.1f}, {_p_text('Levene', numbers.levene_p)}; failures {t.failed}/{t.finished} against "
            f"{r.failed}/{r.finished}, {_p_text('Fisher', numbers.fisher_p)})."
        )
    helped = {good for good, _ in effects}
    verdict = "helped" if helped == {True} else "hurt" if helped == {False} else "both helped and hurt"
    clauses = [clause for _, clause in effects]
    joined = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    return f"{name} {verdict} {where}: it {joined}."


def findings(comparisons: Sequence[TechniqueComparison]) -> list[str]:
    """The Findings section's sentences: the supported ones first, then no-difference, then thin evidence."""
    several_models = len({c.model for c in comparisons}) > 1

    def rank(comparison: TechniqueComparison) -> int:
        if comparison.numbers.thin:
            return 2
        return 0 if _effects(comparison) else 1

    ordered = sorted(comparisons, key=rank)  # stable: grid order within each rank
    return [finding(c, several_models) for c in ordered]
