"""`biotune datasets`, `biotune data check` and `biotune data fetch`: print what biotune.data computes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from biotune.cli.app import app, console, data_app, err_console
from biotune.data.check import CheckReport, FileReport, check_datasets, check_file, list_datasets
from biotune.data.download import TransferSettings
from biotune.data.fetch import FAILED, FetchProgress, FetchReport, FileOutcome, fetch_datasets
from biotune.data.readers import ReadOptions
from biotune.data.sources import DatasetSource
from biotune.errors import ConfigError

STATUS_STYLE = {"ok": "green", "mismatch": "red", "missing": "yellow", "error": "bold red"}
HASH_STYLE = {"verified": "green", "unverified": "yellow", "changed": "bold red"}

DATA_DIR_OPTION = typer.Option(
    None,
    "--data-dir",
    help="BLURB data folder (default $BIOTUNE_DATA, else ../shared/data, else the folder `data fetch` fills)",
)
JSON_OPTION = typer.Option(False, "--json", help="print JSON instead of a table")


def _number(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"


def _size_cell(split: dict[str, Any]) -> str:
    status = split.get("status")
    if status is None:  # no data folder: show BLURB's figure
        return f"[dim]{_number(split['expected_units'])}[/]"
    if status in ("missing", "error"):
        return f"[{STATUS_STYLE[status]}]{status}[/]"
    style = "yellow" if split.get("known") else STATUS_STYLE[status]
    return f"[{style}]{_number(split['units'])}[/]"


def _other_names(row: dict[str, Any]) -> str:
    """Display name and aliases, without repeating a name that differs only in case."""
    seen = {row["name"].lower()}
    names = []
    for name in (row["display_name"], *row["aliases"]):
        if name.lower() not in seen:
            seen.add(name.lower())
            names.append(name)
    return ", ".join(names)


@app.command("datasets")
def datasets(data_dir: Path | None = DATA_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List the 13 BLURB datasets: names, aliases, task type, metric; split sizes when the data is there."""
    home, rows = list_datasets(data_dir)
    if as_json:
        typer.echo(json.dumps({"data_dir": str(home) if home else None, "datasets": rows}, indent=2))
        return
    source = f"sizes read from {home}" if home else "no data folder found: sizes are BLURB's table"
    table = Table(title=f"BLURB datasets ({source})", title_justify="left", show_lines=True)
    table.add_column("dataset / aliases", overflow="fold", ratio=3)
    table.add_column("type / metric", overflow="fold", ratio=2)
    for split in ("train", "dev", "test"):
        table.add_column(split, justify="right", no_wrap=True)
    table.add_column("unit", overflow="fold", ratio=1)
    for row in rows:
        sizes = [_size_cell(row["splits"][split]) for split in ("train", "dev", "test")]
        table.add_row(
            f"[bold]{row['name']}[/]\n[dim]{_other_names(row)}[/]",
            f"{row['task_type']}\n[dim]{row['metric']}[/]",
            *sizes,
            row["unit"],
        )
    console.print(table)


def _print_check(report: CheckReport) -> None:
    table = Table(title=f"data check: {report.data_dir}", title_justify="left")
    for column in ("dataset", "split", "examples", "units", "BLURB", "status", "hash"):
        table.add_column(column, justify="right" if column in ("examples", "units", "BLURB") else "left")
    for dataset in report.datasets:
        for position, split in enumerate(dataset.splits.values()):
            status = f"[{STATUS_STYLE[split.status]}]{split.status}[/]"
            if split.status == "mismatch" and split.known:
                status += " [dim](known)[/]"
            name = f"{dataset.spec.name}\n[dim]{dataset.spec.unit}[/]" if position == 0 else ""
            table.add_row(
                name,
                split.split,
                _number(split.examples),
                _number(split.units),
                _number(split.expected_units),
                status,
                f"[{HASH_STYLE[split.hash]}]{split.hash}[/]" if split.hash else "-",
            )
        table.add_section()
    console.print(table)
    for dataset in report.datasets:
        for split in dataset.splits.values():
            if split.status == "mismatch" and split.known:
                note = f"{dataset.spec.name} {split.split}: {split.note}"
                console.print(f"[dim]note (known difference): {note}[/]", highlight=False)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for problem in report.problems:
        err_console.print(f"[bold red]problem:[/] {problem}", highlight=False)
    verdict = "[green]all present files match BLURB[/]" if report.passed else "[red]check failed[/]"
    console.print(verdict)


def _print_file(report: FileReport) -> None:
    if not report.passed:
        err_console.print(f"[bold red]invalid:[/] {report.error}", highlight=False)
        return
    console.print(
        f"[green]ok[/] {report.file}: {report.examples:,} examples, {report.units:,} {report.unit} "
        f"(task type {report.task_type})",
        highlight=False,
    )
    if report.labels:
        table = Table("label", "count")
        for label, count in report.labels.items():
            table.add_row(label, f"{count:,}")
        console.print(table)
    if report.scores:
        console.print("scores: " + ", ".join(f"{k} {v:.3f}" for k, v in report.scores.items()))


@data_app.command("check")
def check(
    data_dir: Path | None = DATA_DIR_OPTION,
    as_json: bool = JSON_OPTION,
    dataset: list[str] | None = typer.Option(None, "--dataset", help="only this dataset (repeatable)"),
    task_type: str | None = typer.Option(None, "--task-type", help="with --file: the file's task type"),
    file: Path | None = typer.Option(None, "--file", help="validate one of your own files instead"),
    file_format: str = typer.Option(
        "auto", "--file-format", help="with --file: auto, tsv, jsonl, csv, conll or json (as for train)"
    ),
    tag_names: str | None = typer.Option(
        None,
        "--tag-names",
        help="with --file: the tag of each integer ner_tags index, e.g. O,B-Disease,I-Disease",
    ),
) -> None:
    """Read every split, compare sizes with BLURB's table; or validate one file (--task-type T --file F).

    Each present file also gets a hash status: verified (its sha256 is the pinned one, or the one recorded
    when `data fetch` placed it), unverified (nothing to compare it with) or changed (edited or damaged
    since it was fetched: a warning).

    Exit status 0 when every present file matches (a missing file and the two documented differences
    are only reported), 1 otherwise.
    """
    if (task_type is None) != (file is None):
        raise ConfigError("to check your own file pass both --task-type and --file")
    if file is not None and task_type is not None:
        if dataset:
            raise ConfigError("--dataset and --file check different things: pass one of them")
        names = tuple(name.strip() for name in tag_names.split(",") if name.strip()) if tag_names else None
        file_report = check_file(task_type, file, ReadOptions(file_format, names))
        if as_json:
            typer.echo(json.dumps(file_report.to_dict(), indent=2))
        else:
            _print_file(file_report)
        raise typer.Exit(0 if file_report.passed else 1)
    report = check_datasets(data_dir, dataset or None)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_check(report)
    raise typer.Exit(0 if report.passed else 1)


class RichFetchProgress(FetchProgress):
    """Terms as they come up, a progress bar per file while it downloads, one line per file when done.

    All of it goes to stderr; stdout has the summary (or the JSON) only.
    """

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,  # logs and pipes get the one line per file only
        )
        self.tasks: dict[str, TaskID] = {}
        self.started = False

    def terms(self, dataset: DatasetSource, already_accepted: bool) -> None:
        if already_accepted:
            return
        need = "accept to download" if dataset.needs_acceptance else "no acceptance needed"
        err_console.print(f"[bold]{dataset.name}[/] terms ({need}): {dataset.terms}", highlight=False)

    def file_started(self, path: str, total: int | None, already: int) -> None:
        if not self.started:
            self.bars.start()
            self.started = True
        label = path if not already else f"{path} (resuming at {already:,} bytes)"
        if path in self.tasks:
            self.bars.update(self.tasks[path], description=label, total=total, completed=already)
        else:
            self.tasks[path] = self.bars.add_task(label, total=total, completed=already)

    def file_advanced(self, path: str, received: int) -> None:
        self.bars.advance(self.tasks[path], received)

    def file_finished(self, outcome: FileOutcome) -> None:
        if outcome.path in self.tasks:
            self.bars.remove_task(self.tasks.pop(outcome.path))
        if outcome.status == FAILED:
            err_console.print(f"[bold red]failed[/] {outcome.error}", highlight=False)
            return
        resumed = f", resumed at byte {outcome.resumed_from[-1]:,}" if outcome.resumed_from else ""
        how = f"{outcome.status}, {outcome.verified_by} checked{resumed}"
        # progress goes to stderr with the bars, so `--json` keeps stdout to the JSON alone
        err_console.print(f"[green]{outcome.path}[/] {outcome.bytes:,} bytes ({how})", highlight=False)

    def close(self) -> None:
        if self.started:
            self.bars.stop()


def _ask_in_terminal(dataset: DatasetSource) -> bool:
    return typer.confirm(f"Accept the terms of {dataset.name} ({dataset.terms})?", default=False)


def _print_fetch(report: FetchReport) -> None:
    placed, kept = report.placed, [o for o in report.outcomes if o.status == "verified"]
    console.print(
        f"data home {report.home} (chosen by {report.home_chosen_by}): {len(placed)} file(s) placed "
        f"({report.bytes_received:,} bytes received), {len(kept)} already verified, "
        f"{len(report.failures)} failed, {report.seconds:.1f} s",
        highlight=False,
    )
    if not placed and not report.failures:
        console.print("[green]everything was already verified: nothing downloaded[/]")
    for failure in report.failures:
        err_console.print(f"[bold red]problem:[/] {failure.error}", highlight=False)


@data_app.command("fetch")
def fetch(
    datasets: list[str] | None = typer.Argument(None, help="datasets by name or alias (default: all 13)"),
    to: Path | None = typer.Option(None, "--to", help="the data home to fill (see the order above)"),
    mirror: str | None = typer.Option(
        None,
        "--mirror",
        help="fetch from a copy laid out like a data home: http(s)://HOST/PATH/ or a folder "
        "(default $BIOTUNE_DATA_MIRROR, else the pinned upstream URLs)",
    ),
    accept_licenses: bool = typer.Option(
        False, "--accept-licenses", help="accept the printed terms of every dataset that has them"
    ),
    timeout: float = typer.Option(30.0, "--timeout", help="seconds without a byte before a retry"),
    attempts: int = typer.Option(5, "--attempts", min=1, help="tries per file on 5xx / timeouts / cuts"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Download BLURB into the data home, verifying every file before it is placed.

    The data home is --to, else $BIOTUNE_DATA, else ../shared/data when it exists (beside the working
    directory, then beside the checkout), else the user data folder (platformdirs
    user_data_dir("biotune"), e.g. ~/.local/share/biotune); every other command reads the same order.

    Files come from the repositories and commits pinned in data/SOURCES.md and must match its sha256
    (EBM PICO train has no recorded hash: it must have BLURB's 339,167 labelled tokens, and its hash is
    written to the data home's biotune-manifest.json). PubMedQA's split files are generated from the two
    originals and checked the same way. Downloads resume (HTTP Range) and are retried with backoff; a
    file already verified is not downloaded again. The terms of each dataset are printed before its first
    download; accept them with --accept-licenses or by answering yes. $BIOTUNE_DATA_UPSTREAM replaces the
    upstream host (raw.githubusercontent.com) for a proxy. Exit status 0 when every file is in place.
    """
    progress = RichFetchProgress()
    ask = _ask_in_terminal if sys.stdin.isatty() and not as_json else None
    settings = TransferSettings(read_timeout=timeout, attempts=attempts)
    try:
        report = fetch_datasets(
            datasets or None,
            to=to,
            mirror=mirror,
            accept_licenses=accept_licenses,
            ask=ask,
            settings=settings,
            progress=progress,
        )
    finally:
        progress.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_fetch(report)
    raise typer.Exit(0 if report.passed else 1)
