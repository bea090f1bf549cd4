"""`biotune datasets` and `biotune data check`: print what biotune.data.check computes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from biotune.cli.app import app, console, data_app, err_console
from biotune.data.check import CheckReport, FileReport, check_datasets, check_file, list_datasets
from biotune.errors import ConfigError

STATUS_STYLE = {"ok": "green", "mismatch": "red", "missing": "yellow", "error": "bold red"}

DATA_DIR_OPTION = typer.Option(
    None, "--data-dir", help="BLURB data folder (default $BIOTUNE_DATA, else ../shared/data)"
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
    for column in ("dataset", "split", "examples", "units", "BLURB", "status"):
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
) -> None:
    """Read every split, compare sizes with BLURB's table; or validate one file (--task-type T --file F).

    Exit status 0 when every present file matches (a missing file and the two documented differences
    are only reported), 1 otherwise.
    """
    if (task_type is None) != (file is None):
        raise ConfigError("to check your own file pass both --task-type and --file")
    if file is not None and task_type is not None:
        if dataset:
            raise ConfigError("--dataset and --file check different things: pass one of them")
        file_report = check_file(task_type, file)
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
