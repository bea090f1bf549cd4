"""Per-dataset plots: each technique's per-seed test scores as points over a box plot, one panel per model."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from biotune.report.tables import CellSummary

JITTER = 0.08
REFERENCE_STYLES = ("--", ":", "-.")


def plot_file_name(dataset: str) -> str:
    return f"seeds_{re.sub(r'[^A-Za-z0-9_.-]+', '_', dataset)}.png"


def plot_dataset(
    cells: Sequence[CellSummary],
    dataset: str,
    path: Path,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> bool:
    """Write the dataset's PNG; returns False (and writes nothing) when no run has a test score yet.

    references: per model, baseline name -> test score, drawn as dashed lines (what doing nothing scores).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mine = [c for c in cells if c.dataset == dataset]
    if not any(score is not None for c in mine for _, score, _ in c.seed_scores):
        return False
    models = list(dict.fromkeys(c.model for c in mine))
    techniques = list(dict.fromkeys(c.technique for c in mine))
    rng = np.random.default_rng(0)  # fixed jitter: the same study draws the same picture
    width = max(5.0, 1.1 * len(techniques) + 1.5)
    figure, axes = plt.subplots(
        1, len(models), figsize=(width * len(models), 4.2), squeeze=False, sharey=True
    )
    for axis, model in zip(axes[0], models, strict=True):
        by_technique = {c.technique: c for c in mine if c.model == model}
        positions, boxes = [], []
        for index, technique in enumerate(techniques, start=1):
            cell = by_technique.get(technique)
            points = [
                (score, failed)
                for _, score, failed in (cell.seed_scores if cell else [])
                if score is not None
            ]
            if not points:
                continue
            positions.append(index)
            boxes.append([score for score, _ in points])
            for score, failed in points:
                x = index + rng.uniform(-JITTER, JITTER)
                if failed:
                    axis.scatter(x, score, marker="x", color="tab:red", s=36, zorder=3)
                else:
                    axis.scatter(x, score, color="tab:blue", s=22, alpha=0.85, zorder=3)
        if boxes:
            axis.boxplot(
                boxes,
                positions=positions,
                widths=0.5,
                showfliers=False,
                zorder=1,
                medianprops={"color": "black"},
                boxprops={"color": "0.5"},
                whiskerprops={"color": "0.5"},
                capprops={"color": "0.5"},
            )
        for (name, score), style in zip(
            (references or {}).get(model, {}).items(), REFERENCE_STYLES, strict=False
        ):
            axis.axhline(score, linestyle=style, color="tab:green", linewidth=1, label=f"{name}: {score:.1f}")
        axis.set_xticks(range(1, len(techniques) + 1), techniques, rotation=20, ha="right")
        axis.set_xlim(0.4, len(techniques) + 0.6)
        axis.set_title(Path(model).name or model, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test score (per seed)")
    axes[0][0].scatter([], [], color="tab:blue", s=22, label="ok")
    axes[0][0].scatter([], [], marker="x", color="tab:red", s=36, label="failed")
    axes[0][0].legend(loc="best", fontsize=8)
    figure.suptitle(f"{dataset}: test score per seed\n(selected hyper-parameters)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
