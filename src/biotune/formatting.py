"""How scores read wherever biotune prints them: the train summary, the model card, the study report."""

from __future__ import annotations

NOT_APPLICABLE = "n/a"


def std_text(std: float | None, n: int, digits: int = 2) -> str:
    """A sample standard deviation, or `n/a` where fewer than two scores leave it undefined (one seed has
    no spread to report: `± 0.00` would claim a stability nobody measured)."""
    if std is None or n < 2:
        return NOT_APPLICABLE
    return f"{std:.{digits}f}"
