"""Window planning for over-long sentences: whole words, within budget, every word owned by one window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biotune.tasks.windows import assign_words, plan_windows


def test_fitting_sentence_is_one_window() -> None:
    assert plan_windows([1, 2, 3], budget=6) == [(0, 3)]
    assert assign_words([1, 2, 3], [(0, 3)]) == [0, 0, 0]


def test_consecutive_windows_without_overlap() -> None:
    # 3 + 3 | 3 + 2 | 4 with a budget of 6
    assert plan_windows([3, 3, 3, 2, 4], budget=6) == [(0, 2), (2, 4), (4, 5)]


def test_overlapping_windows_share_at_most_the_overlap() -> None:
    windows = plan_windows([1] * 10, budget=4, overlap=2)
    assert windows == [(0, 4), (2, 6), (4, 8), (6, 10)]


def test_each_word_is_predicted_where_it_is_most_central() -> None:
    costs = [1] * 10
    windows = [(0, 4), (2, 6), (4, 8), (6, 10)]
    # Word 2: right context 1 in window 0, left context 0 in window 1 -> window 0.
    # Word 3: right context 0 in window 0, left context 1 in window 1 -> window 1.
    assert assign_words(costs, windows) == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]


def test_sentence_edges_count_as_unlimited_context() -> None:
    # Word 0 has no right context in window 0, but it is at the sentence start: window 0 is best for it.
    # Word 2 likewise belongs to window 1, which reaches the sentence end.
    assert assign_words([1, 1, 1], [(0, 2), (1, 3)]) == [0, 0, 1]
    # A window spanning the whole sentence is unlimited on both sides.
    assert assign_words([1, 1, 1], [(0, 2), (0, 3)]) == [1, 1, 1]


def test_bad_costs_are_rejected() -> None:
    with pytest.raises(ValueError):
        plan_windows([1, 5], budget=4)
    with pytest.raises(ValueError):
        plan_windows([0, 1], budget=4)


@settings(max_examples=200, deadline=None)
@given(
    costs=st.lists(st.integers(1, 8), min_size=0, max_size=60),
    budget=st.integers(8, 20),
    overlap_share=st.floats(0.0, 0.95),
)
def test_windows_cover_every_word_within_budget(costs: list[int], budget: int, overlap_share: float) -> None:
    overlap = int(budget * overlap_share)
    windows = plan_windows(costs, budget, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == len(costs)
    for (start, end), (next_start, next_end) in zip(windows, windows[1:], strict=False):
        assert start < next_start <= end <= next_end, "no gap, always forward"
        assert sum(costs[next_start:end]) <= overlap
    for start, end in windows:
        assert end > start or not costs
        assert sum(costs[start:end]) <= budget
    owners = assign_words(costs, windows)
    for word, owner in enumerate(owners):
        start, end = windows[owner]
        assert start <= word < end
