"""Split a sentence too long for the model into windows of whole words, and pick each word's window.

Windows are counted in sub-tokens. Consecutive windows may share up to `overlap` sub-tokens of words as
context; every word is then predicted from the window where it is most central: the one that maximises
the smaller of its left and right context, a sentence edge counting as unlimited context.
"""

from __future__ import annotations

from collections.abc import Sequence

Window = tuple[int, int]  # [start word, end word)


def plan_windows(costs: Sequence[int], budget: int, overlap: int = 0) -> list[Window]:
    """Windows of consecutive words whose summed costs fit the budget; together they cover every word.

    costs: sub-tokens per word, each in [1, budget] (the caller caps a word longer than a window).
    overlap: at most this many sub-tokens of words shared with the previous window.
    """
    if budget < 1:
        raise ValueError(f"window budget must be at least 1 sub-token, got {budget}")
    if any(cost < 1 or cost > budget for cost in costs):
        raise ValueError("every word must cost between 1 and the window budget")
    windows: list[Window] = []
    n_words = len(costs)
    start = 0
    while True:
        end, used = start, 0
        while end < n_words and used + costs[end] <= budget:
            used += costs[end]
            end += 1
        windows.append((start, end))
        if end >= n_words:
            return windows
        # Step back from the end while the shared words fit the overlap; always move forward by a word.
        next_start, shared = end, 0
        while next_start - 1 > start and shared + costs[next_start - 1] <= overlap:
            next_start -= 1
            shared += costs[next_start]
        start = next_start


def assign_words(costs: Sequence[int], windows: Sequence[Window]) -> list[int]:
    """For each word, the index of the window it is predicted from (the one where it is most central)."""
    n_words = len(costs)
    offsets = [0]
    for cost in costs:
        offsets.append(offsets[-1] + cost)
    owner = [-1] * n_words
    best = [-1.0] * n_words
    for index, (start, end) in enumerate(windows):
        for word in range(start, end):
            left = float("inf") if start == 0 else offsets[word] - offsets[start]
            right = float("inf") if end == n_words else offsets[end] - offsets[word + 1]
            context = min(left, right)
            if context > best[word]:
                best[word] = context
                owner[word] = index
    if -1 in owner:
        raise ValueError("the windows do not cover every word")
    return owner
