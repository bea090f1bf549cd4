"""Build a study's report from its store (opened read-only, so it works while the study runs) and write it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from biotune.formatting import std_text
from biotune.report.plots import plot_dataset, plot_file_name
from biotune.report.render import Image, Section, Table, to_html, to_markdown
from biotune.report.statistics import ALPHA, CONFIDENCE, MIN_SEEDS, findings, format_p, technique_comparisons
from biotune.report.tables import (
    BestModel,
    CellSummary,
    Stats,
    best_models,
    best_techniques,
    blurb_rows,
    instability_rows,
    reference_technique,
    status_counts,
    summarize_cells,
)
from biotune.run_folder import StoredRunMetrics, seed_model_folder
from biotune.study.grid import setting_text
from biotune.study.records import RunRecord, RunStatus
from biotune.study.store import StudyStore

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
ERROR_CHARS = 240
NONE = "—"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    plots: list[Path]
    cells: list[CellSummary]
    models: list[tuple[BestModel, Path | None]]


def fmt(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return NONE
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def mean_std(stats: Stats) -> str:
    return NONE if stats.mean is None else f"{fmt(stats.mean)} ± {std_text(stats.std, stats.n)}"


def rate(value: float | None) -> str:
    return NONE if value is None else f"{100 * value:.0f}%"


def describe_run(record: RunRecord) -> str:
    setting = setting_text(record.hyperparameters, record.figures.resolved)
    return f"{record.model} / {record.dataset} / {record.technique} / {setting} / seed {record.seed}"


def _overview(study_dir: Path, records: list[RunRecord]) -> Section:
    counts = status_counts(records)
    crashed = sum(1 for r in records if r.crashed)
    section = Section("Overview")
    section.blocks.append(
        f"Study folder `{study_dir}`, report made {time.strftime('%Y-%m-%d %H:%M:%S')}. "
        f"{len(records)} runs: {counts[RunStatus.DONE]} done, {counts[RunStatus.FAILED] - crashed} failed, "
        f"{crashed} raised an error, {counts[RunStatus.RUNNING]} running, {counts[RunStatus.QUEUED]} queued."
        + (
            f" {counts[RunStatus.PRUNED]} pruned by the recipe search: their trials' settings are left out "
            "of the tables below."
            if counts[RunStatus.PRUNED]
            else ""
        )
    )
    if counts[RunStatus.RUNNING] or counts[RunStatus.QUEUED]:
        section.blocks.append("The study is not finished: the numbers below cover the finished runs only.")
    section.blocks.append(
        "Per model × dataset × technique, the hyper-parameter setting with the best mean dev score over its "
        "successful seeds is selected (Gu et al.'s protocol) and the scores of that setting are reported. "
        "Mean ± sample std cover every finished seed of the setting, failed ones included; a seed is failed "
        "when it ends no better than a trivial baseline or diverges. Runs that raised an error have no score "
        "and are counted apart. `*` marks a registry default."
    )
    return section


def _results(cells: list[CellSummary]) -> Section:
    rows = [
        [
            c.model,
            c.dataset,
            c.technique,
            setting_text(c.hyperparameters, c.resolved),
            str(c.finished),
            str(c.failed),
            str(c.crashed),
            str(c.pending),
            mean_std(c.dev),
            mean_std(c.test),
        ]
        for c in cells
    ]
    headers = [
        "Model",
        "Dataset",
        "Technique",
        "Hyper-parameters",
        "Seeds",
        "Failed",
        "Errors",
        "Pending",
        "Dev mean ± std",
        "Test mean ± std",
    ]
    return Section("Results at the selected hyper-parameters", blocks=[Table(headers, rows)])


def _best(cells: list[CellSummary]) -> Section:
    rows = [
        [
            b.model,
            b.dataset,
            b.best.technique,
            mean_std(b.best.test),
            f"{b.best.failed}/{b.best.finished}",
            str(b.compared),
        ]
        for b in best_techniques(cells)
    ]
    headers = ["Model", "Dataset", "Best technique", "Test mean ± std", "Failed", "Techniques compared"]
    section = Section("Best technique per dataset and model")
    section.blocks.append("Ranked by mean test score; ties go to the lower standard deviation.")
    section.blocks.append(Table(headers, rows) if rows else "No technique has a test score yet.")
    return section


def kept_models(study_dir: Path, cells: list[CellSummary]) -> list[tuple[BestModel, Path | None]]:
    """Each model x dataset's best model and its saved folder (None when it was not kept)."""
    found = []
    for best in best_models(cells):
        folder = seed_model_folder(study_dir / best.run.run_dir, best.run.seed)
        found.append((best, folder if folder.is_dir() else None))
    return found


def _best_model(study_dir: Path, models: list[tuple[BestModel, Path | None]]) -> Section:
    rows = [
        [
            best.run.model,
            best.run.dataset,
            best.run.technique,
            setting_text(best.run.hyperparameters),
            str(best.run.seed),
            fmt(best.run.dev_score),
            fmt(best.run.test_score),
            str(folder.relative_to(study_dir)) if folder else "not kept",
        ]
        for best, folder in models
    ]
    headers = ["Model", "Dataset", "Technique", "Hyper-parameters", "Seed", "Dev", "Test", "Saved model"]
    section = Section("Best model to export or predict with")
    section.blocks.append(
        "The technique and setting with the best mean dev score over their successful seeds, then that "
        "setting's best-dev seed (one lucky seed of an unstable technique is not picked). "
        "`biotune export STUDY_DIR --to DIR` exports it with the setting's seeds and the other techniques "
        "in its model card; `biotune predict` takes the saved model's run folder."
    )
    section.blocks.append(Table(headers, rows) if rows else "No run has finished with a dev score yet.")
    return section


def _blurb(cells: list[CellSummary]) -> Section:
    from biotune.metrics import BLURB_TYPES

    section = Section("BLURB score")
    rows = blurb_rows(cells)
    if not any(row.score.score is not None for row in rows):
        covered = sorted({kind for row in rows for kind in row.score.per_type})
        section.blocks.append(
            "The BLURB score needs at least one dataset of each of the 6 task types "
            f"({', '.join(BLURB_TYPES)}); this study's scored datasets cover: {', '.join(covered) or 'none'}."
        )
        return section
    headers = ["Model", "Technique", "BLURB", *BLURB_TYPES, "Missing"]
    table_rows = [
        [
            row.model,
            row.technique,
            fmt(row.score.score),
            *(fmt(row.score.per_type.get(kind)) for kind in BLURB_TYPES),
            ", ".join(row.score.missing_datasets) or NONE,
        ]
        for row in rows
    ]
    section.blocks.append("Mean over the 6 task types of the mean test score of each type's datasets.")
    section.blocks.append(Table(headers, table_rows))
    return section


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def with_run_figures(study_dir: Path, record: RunRecord) -> RunRecord:
    """A record whose store entry predates the throughput, memory, device and featurization figures gets
    them from its run folder's results.json (which has always been the source of the store's copy)."""
    if record.figures.throughput is not None:
        return record
    import dataclasses

    from biotune.errors import RunFileError
    from biotune.run_folder import read_results

    try:
        results = read_results(study_dir / record.run_dir)
    except RunFileError:  # no folder, or one the report cannot read: the record as the store has it
        return record
    if not results.seeds:
        return record
    seed, stored = results.seeds[0], record.figures
    from_folder = {
        "throughput": seed.throughput,
        "memory": seed.memory,
        "history": seed.history,
        "device": results.device,
        "featurization": results.featurization,
    }
    missing = {name: value for name, value in from_folder.items() if not getattr(stored, name)}
    return dataclasses.replace(record, metrics=stored.model_copy(update=missing).model_dump(mode="json"))


def _figure(records: tuple[RunRecord, ...], pick: Callable[[StoredRunMetrics], float | None]) -> list[float]:
    values = [pick(record.figures) for record in records]
    return [float(value) for value in values if value is not None]


def _peak_rss(figures: StoredRunMetrics) -> float | None:
    return figures.memory.peak_rss_mb if figures.memory else None


def _train_rate(figures: StoredRunMetrics) -> float | None:
    return figures.throughput.train_tokens_per_s if figures.throughput else None


def _eval_rate(figures: StoredRunMetrics) -> float | None:
    return figures.throughput.eval_tokens_per_s if figures.throughput else None


def _epochs_text(records: tuple[RunRecord, ...]) -> str:
    """Epochs trained (early stopping can end a run before its cap) and the selected one, per seed."""
    parts = []
    for record in sorted(records, key=lambda r: r.seed):
        figures = record.figures
        trained = sum(1 for epoch in figures.history if epoch.epoch)  # not the siamese epoch 0
        if figures.history:
            parts.append(f"{trained} (best {figures.best_epoch})")
    return ", ".join(parts) or NONE


def _cut_text(records: tuple[RunRecord, ...]) -> str:
    """Examples truncated and examples split into windows, over every split of the first scored run."""
    for record in records:
        counts = record.figures.featurization.values()
        if counts:
            truncated = sum(c.truncated for c in counts)
            windows = sum(c.split_into_windows for c in counts)
            examples = sum(c.examples for c in counts)
            return f"{truncated:,} / {windows:,} of {examples:,}"
    return NONE


def _datasets(cells: list[CellSummary], records: list[RunRecord], study_dir: Path) -> Section:
    from biotune.metrics import PUBMEDBERT_TEST

    section = Section("Datasets: scores beside the references, cost and scale")
    section.blocks.append(
        "Test and dev: mean over the selected setting's finished seeds, failed ones included. Trivial: the "
        "failure line on test. PubMedBERT: Gu et al. 2021's test score (a 110M-parameter domain model; the "
        "reference, not a target for a small general one). Wall: median seconds a run took; peak RSS: the "
        "largest resident memory of a seed; tokens/s: real (non-padding) tokens per second of training and "
        "of evaluation, medians. Cut: examples truncated / split into windows, of all examples."
    )
    trivial = baselines(records)
    rows = []
    for c in cells:
        scored = tuple(with_run_figures(study_dir, r) for r in c.runs if r.finished and not r.crashed)
        if not scored and c.crashed:
            reason = _first_line(next((r.error for r in c.runs if r.crashed), None))
            rows.append([c.dataset, c.technique, f"not run: {reason}", *[NONE] * 11])
            continue
        rss = _figure(scored, _peak_rss)
        rows.append(
            [
                c.dataset,
                c.technique,
                f"{c.finished} ({c.failed} failed)",
                fmt(c.dev.mean),
                fmt(c.test.mean),
                fmt(trivial.get((c.model, c.dataset), {}).get("trivial", {}).get("test")),
                fmt(PUBMEDBERT_TEST.get(c.dataset)),
                _epochs_text(scored),
                fmt(_median([r.seconds for r in scored if r.seconds is not None]), 0),
                fmt(max(rss), 0) if rss else NONE,
                fmt(_median(_figure(scored, _train_rate)), 0),
                fmt(_median(_figure(scored, _eval_rate)), 0),
                _cut_text(scored),
                ", ".join(dict.fromkeys(f"{d.device} {d.precision}" for d in
                                        (r.figures.device for r in scored) if d)) or NONE,
            ]
        )  # fmt: skip
    headers = [
        "Dataset",
        "Technique",
        "Seeds",
        "Dev",
        "Test",
        "Trivial",
        "PubMedBERT",
        "Epochs (best)",
        "Wall s",
        "Peak RSS MB",
        "Train tok/s",
        "Eval tok/s",
        "Cut",
        "Device",
    ]
    section.blocks.append(Table(headers, rows) if rows else "No run yet.")
    return section


def _instability(cells: list[CellSummary]) -> Section:
    reference = reference_technique(cells)
    section = Section(f"Instability compared with {reference or 'standard'}")
    rows = instability_rows(cells)
    if reference is None or not rows:
        section.blocks.append("No plain `standard` technique in this study to compare with.")
        return section
    section.blocks.append(
        f"Each technique's test std and failure rate next to `{reference}` (same model and dataset); "
        "a negative Δ std or Δ failure rate means more stable."
    )
    table_rows = [
        [
            r.cell.model,
            r.cell.dataset,
            r.cell.technique,
            std_text(r.cell.test.std, r.cell.test.n),
            fmt(r.std_change, signed=True),
            rate(r.cell.failure_rate),
            rate(r.reference.failure_rate),
            NONE if r.failure_rate_change is None else f"{100 * r.failure_rate_change:+.0f} pts",
            fmt(r.mean_change, signed=True),
        ]
        for r in rows
    ]
    headers = [
        "Model",
        "Dataset",
        "Technique",
        "Test std",
        "Δ std",
        "Failure rate",
        f"{reference} failure rate",
        "Δ failure rate",
        "Δ test mean",
    ]
    section.blocks.append(Table(headers, table_rows))
    return section


def _statistics(cells: list[CellSummary]) -> list[Section]:
    """The tests behind the Findings, then the Findings themselves (sentences made from the same numbers)."""
    comparisons = technique_comparisons(cells)
    reference = reference_technique(cells) or "standard"
    section = Section(f"Statistics against {reference}")
    if not comparisons:
        section.blocks.append(
            f"No technique to compare: the study needs `{reference}` and another technique with finished "
            "seeds at the same model, dataset and hyper-parameters."
        )
        return [section]
    section.blocks.append(
        f"Each technique at its selected setting against `{reference}` at the same model, dataset and "
        "hyper-parameters, over the test scores of every finished seed (failed ones included). Δ mean: "
        f"technique minus `{reference}`, with a {100 * CONFIDENCE:.0f}% bootstrap interval (9999 resamples, "
        "percentile). Levene: Brown-Forsythe's test of equal variances (median-centred). Fisher: exact test "
        "of the failure counts. p-values are not corrected for the number of comparisons."
    )
    rows = []
    for comparison in comparisons:
        numbers = comparison.numbers
        t, r = numbers.technique, numbers.reference
        interval = numbers.mean_interval
        difference = numbers.failure_rate_difference
        rows.append(
            [
                comparison.model,
                comparison.dataset,
                comparison.technique,
                setting_text(comparison.hyperparameters, comparison.resolved),
                f"{t.n} / {r.n}",
                fmt(numbers.mean_difference, signed=True),
                NONE if interval is None else f"{interval[0]:+.2f} to {interval[1]:+.2f}",
                f"{fmt(t.std)} / {fmt(r.std)}",
                format_p(numbers.levene_p),
                f"{t.failed}/{t.finished} / {r.failed}/{r.finished}",
                NONE if difference is None else f"{100 * difference:+.0f} pts",
                format_p(numbers.fisher_p),
            ]
        )
    headers = [
        "Model",
        "Dataset",
        "Technique",
        "Setting",
        f"Seeds (vs {reference})",
        "Δ test mean",
        f"{100 * CONFIDENCE:.0f}% CI",
        f"Test std (vs {reference})",
        "Levene p",
        f"Failed (vs {reference})",
        "Δ failure rate",
        "Fisher p",
    ]
    section.blocks.append(Table(headers, rows))
    findings_section = Section("Findings")
    findings_section.blocks.append(
        f"Only what the numbers support: a change in mean where the {100 * CONFIDENCE:.0f}% interval "
        f"excludes 0, a change in spread or failure rate where its test gives p < {ALPHA}; with fewer than "
        f"{MIN_SEEDS} seeds a cell the evidence is called thin."
    )
    findings_section.blocks += findings(comparisons)
    return [section, findings_section]


def baselines(records: list[RunRecord]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """Per model x dataset: what doing nothing scores (trivial predictor; zero-shot cosine for similarity).

    Read from the first finished run that recorded them; every run of a model x dataset computes the same.
    """
    found: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for record in records:
        key = (record.model, record.dataset)
        recorded = record.figures.baseline
        if key in found or recorded is None:
            continue
        kinds = {"trivial": recorded.trivial, "zero_shot_cosine": recorded.zero_shot_cosine}
        found[key] = {
            name: {split: metrics.score for split, metrics in by_split.items()}
            for name, by_split in kinds.items()
            if by_split is not None
        }
    return found


BASELINE_NAMES = {"trivial": "trivial predictor", "zero_shot_cosine": "zero-shot cosine (no training)"}


def _baselines(records: list[RunRecord]) -> Section:
    section = Section("Baselines: what doing nothing scores")
    section.blocks.append(
        "The trivial predictor (majority class, constant, all-O) is the failure line; for similarity the "
        "untrained encoder's mean-pooled embeddings compared by cosine show what fine-tuning must beat."
    )
    rows = [
        [model, dataset, BASELINE_NAMES.get(name, name), fmt(scores.get("dev")), fmt(scores.get("test"))]
        for (model, dataset), by_name in baselines(records).items()
        for name, scores in by_name.items()
    ]
    section.blocks.append(
        Table(["Model", "Dataset", "Baseline", "Dev", "Test"], rows) if rows else "None yet."
    )
    return section


def _seed_text(cell: CellSummary) -> str:
    return ", ".join(
        f"s{seed}: {fmt(score)}{' (failed)' if failed else ''}" for seed, score, failed in cell.seed_scores
    )


def _per_seed(
    cells: list[CellSummary], study_dir: Path, records: list[RunRecord]
) -> tuple[list[Section], list[Path]]:
    sections: list[Section] = [Section("Per-seed test scores")]
    plots: list[Path] = []
    for dataset in dict.fromkeys(c.dataset for c in cells):
        section = Section(dataset, level=3)
        path = study_dir / plot_file_name(dataset)
        references = {
            model: {
                BASELINE_NAMES.get(name, name): scores["test"]
                for name, scores in by_name.items()
                if "test" in scores
            }
            for (model, name_of_dataset), by_name in baselines(records).items()
            if name_of_dataset == dataset
        }
        if plot_dataset(cells, dataset, path, references):
            plots.append(path)
            section.blocks.append(Image(path.name, f"{dataset}: per-seed test scores by technique"))
        rows = [[c.model, c.technique, _seed_text(c) or NONE] for c in cells if c.dataset == dataset]
        section.blocks.append(Table(["Model", "Technique", "Test score per seed"], rows))
        sections.append(section)
    return sections, plots


def _selection(cells: list[CellSummary]) -> Section | None:
    rows = []
    for cell in cells:
        tried = any(r.finished and not r.crashed for c in cell.candidates for r in c.runs)
        if len(cell.candidates) < 2 or not tried:
            continue
        for candidate in cell.candidates:
            ok = sum(1 for r in candidate.runs if r.status == RunStatus.DONE)
            rows.append(
                [
                    cell.model,
                    cell.dataset,
                    cell.technique,
                    setting_text(candidate.hyperparameters, cell.resolved),
                    fmt(candidate.mean_dev_ok),
                    str(ok),
                    "✓" if candidate.selected else "",
                ]
            )
    if not rows:
        return None
    headers = ["Model", "Dataset", "Technique", "Setting", "Mean dev (ok seeds)", "Ok seeds", "Selected"]
    return Section("Hyper-parameter selection on dev", blocks=[Table(headers, rows)])


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0][:ERROR_CHARS] if lines else NONE


def _failures(records: list[RunRecord]) -> list[Section]:
    """Seeds judged failed one by one (their messages differ); runs that raised grouped by message."""
    sections = []
    judged = [r for r in records if r.status == RunStatus.FAILED and not r.crashed]
    if judged:
        rows = [[r.run_id, describe_run(r), _first_line(r.error)] for r in judged]
        sections.append(Section("Seeds judged failed", blocks=[Table(["Run", "Run settings", "Why"], rows)]))
    errors: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.crashed:
            errors.setdefault(_first_line(record.error), []).append(record)
    if errors:
        rows = [
            [message, str(len(runs)), ", ".join(dict.fromkeys(r.dataset for r in runs)), runs[0].run_id]
            for message, runs in errors.items()
        ]
        section = Section("Runs that raised an error")
        section.blocks.append("Each such run keeps its traceback in `runs/<run>/error.txt`.")
        section.blocks.append(Table(["Error", "Runs", "Datasets", "First run"], rows))
        sections.append(section)
    return sections


def build_sections(
    study_dir: Path, records: list[RunRecord]
) -> tuple[list[Section], list[Path], list[CellSummary], list[tuple[BestModel, Path | None]]]:
    cells = summarize_cells(records)
    models = kept_models(study_dir, cells)
    sections = [
        _overview(study_dir, records),
        _results(cells),
        _best(cells),
        _best_model(study_dir, models),
        _blurb(cells),
        _datasets(cells, records, study_dir),
        _instability(cells),
        *_statistics(cells),
        _baselines(records),
    ]
    seed_sections, plots = _per_seed(cells, study_dir, records)
    sections += seed_sections
    selection = _selection(cells)
    sections += [selection] if selection is not None else []
    sections += _failures(records)
    return sections, plots, cells, models


def _write_atomic(path: Path, text: str) -> None:
    """Readers (a browser refreshing mid-study) never see a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def write_report(study_dir: Path) -> ReportFiles:
    """Write report.md, report.html and one PNG per dataset into the study folder."""
    study_dir = Path(study_dir)
    with StudyStore(study_dir, read_only=True) as store:
        records = store.runs()
    sections, plots, cells, models = build_sections(study_dir, records)
    title = f"Study report: {study_dir.resolve().name}"
    markdown, page = study_dir / REPORT_MD, study_dir / REPORT_HTML
    _write_atomic(markdown, to_markdown(title, sections))
    _write_atomic(page, to_html(title, sections))
    return ReportFiles(markdown, page, plots, cells, models)
