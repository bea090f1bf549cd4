"""`biotune study` (run or resume a grid of runs) and `biotune report` (tables and plots from a study)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from biotune.cli.app import app, console, err_console, quiet_transformers
from biotune.cli.cmd_recommend import print_search
from biotune.report import ReportFiles, write_report
from biotune.report.build import mean_std
from biotune.report.tables import CellSummary
from biotune.study import StudyProgress, default_output, make_runner, run_study
from biotune.study.grid import HYPERPARAMETER_LABELS
from biotune.study.orchestrate import describe
from biotune.study.records import RunRecord, RunStatus
from biotune.study.runners import disk_full_stops
from biotune.study.search import TrialSummary


class ConsoleProgress(StudyProgress):
    """One line per run as it starts and finishes."""

    def __init__(self) -> None:
        self.total = 0
        self.finished = 0

    def planned(self, total: int, to_run: int, warnings: list[str]) -> None:
        for warning in warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        self.total = to_run
        kept = total - to_run
        console.print(f"{total} runs in the grid; {kept} already finished, {to_run} to run", highlight=False)

    def run_started(self, record: RunRecord) -> None:
        console.print(f"[dim]start[/] {record.run_id}  {describe(record)}", highlight=False)

    def run_finished(self, record: RunRecord) -> None:
        self.finished += 1
        scores = f"dev {_score(record.dev_score)}  test {_score(record.test_score)}"
        if record.status == RunStatus.DONE:
            state = "[green]done[/]"
        elif record.status == RunStatus.PRUNED:
            state = "[yellow]pruned[/]"
            scores = record.error or ""
        elif record.crashed:
            state = "[bold red]error[/]"
            scores = record.error or ""
        else:
            state = "[red]failed[/]"
            scores += f"  ({record.error})" if record.error else ""
        seconds = f"{record.seconds:.1f} s" if record.seconds is not None else ""
        count = f"{self.finished}/{self.total}" if self.total else str(self.finished)  # a search: no total
        console.print(f"[{count}] {state} {record.run_id}  {scores}  {seconds}", highlight=False)

    def search_planned(self, searches: int, trials: int, warnings: list[str]) -> None:
        for warning in warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        console.print(
            f"recipe search: {searches} model x dataset search(es), {trials} trials each", highlight=False
        )

    def search_started(self, model: str, dataset: str, ended: int, trials: int) -> None:
        self.total = 0
        console.print(
            f"search {model} / {dataset}: {ended} of {trials} trials ended before, {trials - ended} to run",
            highlight=False,
        )

    def trial_finished(self, trial: TrialSummary) -> None:
        score = f"score {trial.score:.2f}" if trial.score is not None else trial.error or ""
        recipe = f"lr {trial.learning_rate or 0:.3g}, {trial.technique}"
        console.print(
            f"trial {trial.number} {trial.state}: {recipe}  {score}",
            highlight=False,
        )


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _compact_setting(cell: CellSummary) -> str:
    """`5e-05/16/1`; a registry default carries a `*` (the report spells the setting out)."""
    parts = []
    for key in HYPERPARAMETER_LABELS:
        value = cell.hyperparameters.get(key)
        value, mark = (value, "") if value is not None else (cell.resolved.get(key), "*")
        if value is None:
            parts.append("?")
        else:
            parts.append((f"{value:g}" if isinstance(value, float) else str(value)) + mark)
    return "/".join(parts)


def summary_table(cells: list[CellSummary]) -> Table:
    """Columns that hold one value for every row move to the title, so the table fits a terminal."""
    labels = {
        "model": [Path(c.model).name or c.model for c in cells],  # a local folder shows as its name
        "dataset": [c.dataset for c in cells],
        "technique": [c.technique for c in cells],
        "lr/batch/ep": [_compact_setting(c) for c in cells],
    }
    shared = {name: vals[0] for name, vals in labels.items() if len(set(vals)) == 1 and name != "technique"}
    title = "Study summary: test at the best-dev hyper-parameters"
    if shared:
        title += " (" + ", ".join(f"{name} {value}" for name, value in shared.items()) + ")"
    table = Table(title=title)
    shown = [name for name in labels if name not in shared]
    for name in shown:
        table.add_column(name, overflow="fold", no_wrap=name != "model")
    with_errors = any(cell.crashed for cell in cells)
    for column in ("seeds", "failed", *(("errors",) if with_errors else ()), "dev", "test"):
        table.add_column(column, justify="right", no_wrap=True)
    for row, cell in enumerate(cells):
        counts = [str(cell.finished), f"[red]{cell.failed}[/]" if cell.failed else "0"]
        if with_errors:
            counts.append(f"[bold red]{cell.crashed}[/]" if cell.crashed else "0")
        names = (labels[name][row] for name in shown)
        table.add_row(*names, *counts, mean_std(cell.dev), mean_std(cell.test))
    return table


def _print_report(files: ReportFiles) -> None:
    console.print(summary_table(files.cells))
    console.print(f"report: {files.markdown}  {files.html}", highlight=False)
    for plot in files.plots:
        console.print(f"plot:   {plot}", highlight=False)
    for best, folder in files.models:
        run = best.run
        where = str(folder.parent.parent) if folder else "(its model was not kept)"
        console.print(
            f"best model ({run.model} / {run.dataset}): {where}  {run.technique}, seed {run.seed}, "
            f"dev {_score(run.dev_score)}, test {_score(run.test_score)}",
            highlight=False,
        )
    kept = [best for best, folder in files.models if folder is not None]
    if kept:
        choose = " --model M --dataset D" if len(kept) > 1 else ""
        console.print(
            f"export it with its evidence: biotune export {files.markdown.parent} --to DIR{choose}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("study")
def study(
    study_file: Path = typer.Argument(..., help="study YAML: models, datasets, techniques, seeds, ..."),
    output: Path | None = typer.Option(None, "--output", "-o", help="study folder (default: runs/<stem>)"),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="keep finished runs and run the rest, or start the folder over"
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="run failed runs again too"),
    runner: str = typer.Option("local", "--runner", help="local (this process) or ray (one Ray task a run)"),
    address: str | None = typer.Option(None, "--address", help="Ray cluster to join (default: a local one)"),
    num_cpus: float = typer.Option(1.0, "--num-cpus", help="CPUs each Ray task asks for"),
    gpus_per_run: float | None = typer.Option(
        None,
        "--gpus-per-run",
        help="GPUs each run asks for; a fraction packs runs (0.5: two a GPU); default 1 when there are GPUs",
    ),
    max_retries: int = typer.Option(
        3, "--max-retries", help="Ray retries of a run whose worker or node died (never of a diverged run)"
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="validate the study and estimate its size and time; train nothing"
    ),
    tokens_per_second: float | None = typer.Option(
        None,
        "--tokens-per-second",
        help="--dry-run: your device's training rate (real tokens/s) for the estimate (default: measured)",
    ),
    report_to: list[str] | None = typer.Option(
        None,
        "--report-to",
        help="tracking for every run, e.g. tensorboard,mlflow (replaces train.report_to; one MLflow "
        "experiment named after the study folder)",
    ),
) -> None:
    """Run every run of a study grid (resumable), then write its report."""
    quiet_transformers()  # one line per run is the progress
    if dry_run:
        _print_estimate(study_file, tokens_per_second)
        return
    folder = output if output is not None else default_output(study_file)
    result = run_study(
        study_file,
        folder,
        resume=resume,
        retry_failed=retry_failed,
        runner=make_runner(
            runner, address=address, num_cpus=num_cpus, gpus_per_run=gpus_per_run, max_retries=max_retries
        ),
        progress=ConsoleProgress(),
        report_to=report_to or None,
    )
    counts = result.counts
    pruned = f", {counts[RunStatus.PRUNED]} pruned" if counts[RunStatus.PRUNED] else ""
    console.print(
        f"{result.total} runs: {counts[RunStatus.DONE]} done, {counts[RunStatus.FAILED]} failed{pruned}",
        highlight=False,
    )
    for summary in result.searches:
        print_search(summary)
    with disk_full_stops(result.study_dir):
        files = write_report(result.study_dir)
    _print_report(files)


@app.command("report")
def report(study_dir: Path = typer.Argument(..., help="a study folder (holds study.sqlite)")) -> None:
    """Write report.md, report.html and per-dataset plots; safe to run while the study is going on."""
    with disk_full_stops(study_dir):
        files = write_report(study_dir)
    _print_report(files)


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _print_estimate(study_file: Path, tokens_per_second: float | None) -> None:
    from rich.table import Table

    from biotune.study import expand_grid, load_study
    from biotune.study.estimate import estimate_study

    study = load_study(study_file)
    if study.search is not None:
        from biotune.study.search import plan_search

        _, _, one_trial = plan_search(study, str(study_file))  # the whole space validated
        trials = study.search.trials
        console.print(
            f"{study_file}: a recipe search, {trials} trials per model x dataset; the estimate below is "
            "every trial trained to the end (standard, no pruning): an upper bound",
            highlight=False,
        )
        runs = one_trial * trials
    else:
        runs = expand_grid(study, str(study_file))  # every option validated; models are not resolved
    estimate = estimate_study(runs, tokens_per_second)
    console.print(
        f"{study_file}: valid. {estimate.runs} runs = {estimate.models} model(s) x {estimate.datasets} "
        f"dataset(s) x {estimate.techniques} technique(s) x hyper-parameter settings x seeds "
        f"(up to {estimate.seeds} per dataset)",
        highlight=False,
    )
    table = Table(title="train tokens and time per run")
    for column in ("model", "dataset", "max len", "tok/epoch", "runs", "tok/run", "time/run", "total"):
        table.add_column(column, justify="left" if column in ("model", "dataset") else "right")
    groups: dict[tuple[str, str], list[int]] = {}
    for run, tokens in estimate.per_run:
        groups.setdefault((run.model, run.dataset), []).append(tokens)
    lengths = {(c.model, c.dataset): c for c in estimate.costs}
    for (model, dataset), tokens in groups.items():
        cost = lengths.get((model, dataset))
        mean = sum(tokens) / len(tokens)
        table.add_row(
            model.rsplit("/", 1)[-1],
            dataset,
            str(cost.max_length) if cost else "?",
            f"{cost.train_tokens_per_epoch:,}" if cost else "?",
            str(len(tokens)),
            f"{mean:,.0f}",
            _duration(mean / estimate.tokens_per_second),
            _duration(sum(tokens) / estimate.tokens_per_second),
        )
    console.print(table)
    console.print(
        f"total: {estimate.total_tokens:,} train tokens; at {estimate.tokens_per_second:,.0f} tokens/s "
        f"({estimate.rate_source}): {_duration(estimate.total_seconds)} on one device, evaluation not "
        "included; N devices (--runner ray) divide it by about N",
        highlight=False,
    )
    for note in estimate.notes:
        console.print(f"note: {note}", highlight=False)
