"""Statistics against `standard` and the Findings sentences, on hand-made seeds whose answer is known."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from biotune.report.statistics import (
    SeedSample,
    TechniqueComparison,
    compare,
    finding,
    findings,
    format_p,
    mean_difference_interval,
)

# 20 fixed offsets with mean 0: a technique's seeds are 70 + its std * OFFSETS
OFFSETS = np.array(
    [-1.5, -1, -0.6, -0.3, 0, 0.3, 0.6, 1, 1.5, -1.2, 1.2, -0.8, 0.8, -0.1, 0.1, -2, 2, -0.45, 0.45, 0]
)


def sample(scores: list[float] | np.ndarray, failed: int = 0) -> SeedSample:
    scores = [float(s) for s in scores]
    return SeedSample(tuple(scores), failed, len(scores))


def comparison(
    technique: SeedSample, reference: SeedSample, name: str = "freeze:3", dataset: str = "HoC"
) -> TechniqueComparison:
    return TechniqueComparison(
        "tiny", dataset, name, "standard", {"learning_rate": 3e-5}, {}, compare(technique, reference)
    )


def test_halving_the_std_over_enough_seeds_is_a_finding_with_its_levene_p() -> None:
    standard = sample(70 + 2.0 * OFFSETS)
    halved = sample(70 + 1.0 * OFFSETS)
    numbers = compare(halved, standard)
    expected_p = stats.levene(halved.scores, standard.scores, center="median").pvalue
    assert numbers.levene_p == pytest.approx(expected_p) and numbers.levene_p < 0.05
    assert numbers.mean_difference == pytest.approx(0.0, abs=1e-9)
    assert not numbers.mean_changed and not numbers.failures_changed  # same mean, no failures
    sentence = finding(comparison(halved, standard))
    assert sentence == (
        f"freeze:3 helped on HoC: it lowered the seed std from {standard.std:.1f} to {halved.std:.1f} "
        f"(Levene p = {format_p(expected_p)})."
    )
    assert "mean" not in sentence and "failure" not in sentence


def test_a_technique_that_changes_nothing_gets_no_finding() -> None:
    standard = sample(70 + 2.0 * OFFSETS)
    same = sample((70 + 2.0 * OFFSETS)[::-1])  # the same scores, other seeds
    numbers = compare(same, standard)
    low, high = numbers.mean_interval
    assert (
        low < 0 < high and numbers.levene_p == pytest.approx(1.0) and numbers.fisher_p == pytest.approx(1.0)
    )
    sentence = finding(comparison(same, standard, name="llrd:0.9"))
    assert sentence.startswith("llrd:0.9 on HoC: no difference from standard that the numbers support")
    assert not re.search(r"\b(helped|hurt|lowered|raised)\b", sentence)


def test_halving_the_std_over_five_seeds_is_not_claimed() -> None:
    offsets = np.array([-1.2, -0.5, 0.0, 0.5, 1.2])
    numbers = compare(sample(70 + offsets), sample(70 + 2 * offsets))
    assert numbers.levene_p > 0.05 and not numbers.thin
    assert "no difference" in finding(comparison(sample(70 + offsets), sample(70 + 2 * offsets)))


def test_a_failure_rate_difference_is_tested_with_fishers_exact_test() -> None:
    # standard: 6 of 10 seeds collapse to the trivial score; reinit:1: none does
    standard = sample([0.0] * 6 + [80.0, 81.0, 79.0, 80.0], failed=6)
    reinit = sample(80 + OFFSETS[:10], failed=0)
    numbers = compare(reinit, standard)
    # two-sided Fisher on [[0, 10], [6, 4]]: the hypergeometric tables at least as extreme
    assert numbers.fisher_p == pytest.approx(0.010836, abs=1e-6)
    assert numbers.failure_rate_difference == pytest.approx(-0.6)
    sentence = finding(comparison(reinit, standard, name="reinit:1", dataset="BIOSSES"))
    assert sentence.startswith(
        "reinit:1 helped on BIOSSES: it raised the mean test score from 32.0 (standard)"
    )
    assert "lowered the failure rate from 60% (6/10) to 0% (0/10) (Fisher p = 0.01)" in sentence
    low, high = numbers.mean_interval
    assert low > 0 and f"95% CI {low:+.1f} to {high:+.1f}" in sentence


def test_a_technique_that_hurts_is_said_to_hurt() -> None:
    standard = sample(80 + OFFSETS[:9])
    worse = sample(70 + 4 * OFFSETS[:9])
    sentence = finding(comparison(worse, standard, name="no-bias-correction"))
    assert sentence.startswith(
        "no-bias-correction hurt on HoC: it lowered the mean test score from 80.0 (standard) to 70.0"
    )
    assert "raised the seed std from" in sentence


def test_fewer_than_five_seeds_is_thin_evidence_whatever_the_numbers() -> None:
    standard = sample([40.0, 50.0, 60.0])
    better = sample([90.0, 90.5, 91.0])
    numbers = compare(better, standard)
    assert numbers.thin and numbers.mean_changed  # the interval alone would claim it
    sentence = finding(comparison(better, standard, dataset="BIOSSES"))
    assert sentence.startswith("freeze:3 on BIOSSES: 3 seeds against 3 for standard, fewer than 5 per cell")
    assert "the evidence is thin and no finding is claimed" in sentence
    assert not re.search(r"\b(helped|hurt|lowered|raised)\b", sentence)


def test_findings_put_supported_claims_first_and_name_models_when_several() -> None:
    standard = sample(70 + 2.0 * OFFSETS)
    thin = comparison(sample([1.0, 2.0]), sample([1.0, 3.0]), name="warmup:0.1")
    nothing = comparison(sample((70 + 2.0 * OFFSETS)[::-1]), standard, name="llrd:0.9")
    halved = TechniqueComparison(
        "other-model", "HoC", "freeze:3", "standard", {}, {}, compare(sample(70 + OFFSETS), standard)
    )
    sentences = findings([thin, nothing, halved])
    assert sentences[0].startswith("freeze:3 helped on HoC with other-model")
    assert sentences[1].startswith("llrd:0.9 on HoC with tiny: no difference")
    assert "evidence is thin" in sentences[2]


def test_bootstrap_interval_is_seeded_and_covers_the_difference() -> None:
    technique, reference = list(75 + OFFSETS[:8]), list(70 + OFFSETS[8:16])
    first = mean_difference_interval(technique, reference)
    assert first == mean_difference_interval(technique, reference)  # a report regenerates identically
    difference = np.mean(technique) - np.mean(reference)
    assert first[0] < difference < first[1] and first[0] > 0
    assert mean_difference_interval([1.0], [2.0, 3.0]) is None
    constant = compare(sample([5.0] * 5), sample([5.0] * 5))
    assert constant.levene_p is None and constant.mean_interval == (0.0, 0.0)  # no spread: Levene undefined
    sentence = finding(comparison(sample([5.0] * 5), sample([5.0] * 5)))
    assert "no difference from standard" in sentence and "Levene test undefined" in sentence
