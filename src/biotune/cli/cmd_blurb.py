"""`biotune blurb`: the BLURB score from a scores JSON file or from result folders."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from biotune.cli.app import app, console
from biotune.metrics import (
    BLURB_DATASETS,
    BLURB_TYPE_OF_DATASET,
    BLURB_TYPES,
    BlurbScore,
    blurb_score,
    read_scores,
    resolve_dataset,
)


def _display_name(name: str) -> str:
    display = resolve_dataset(name).display_name
    return name if display == name else f"{display} ({name})"


def blurb_table(result: BlurbScore) -> Table:
    table = Table(title="BLURB", show_lines=False)
    table.add_column("task type")
    table.add_column("dataset")
    table.add_column("score", justify="right")
    for position, kind in enumerate(BLURB_TYPES):
        if position:
            table.add_section()
        for row, name in enumerate(BLURB_DATASETS[kind]):
            score = result.per_dataset.get(name)
            table.add_row(
                kind if row == 0 else "",
                _display_name(name),
                f"{score:.2f}" if score is not None else "[dim]missing[/]",
            )
        mean = result.per_type.get(kind)
        given = sum(name in result.per_dataset for name in BLURB_DATASETS[kind])
        label = f"[bold]{kind} mean[/]"
        if 0 < given < len(BLURB_DATASETS[kind]):
            label += f" [yellow](over {given} of {len(BLURB_DATASETS[kind])})[/]"
        table.add_row("", label, f"[bold]{mean:.2f}[/]" if mean is not None else "[dim]missing[/]")
    return table


@app.command("blurb")
def blurb(
    paths: list[Path] = typer.Argument(
        ..., help="one JSON file {dataset: score}, or result folders (runs or studies holding runs)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the BLURB score as JSON"),
    failed: str = typer.Option(
        "error",
        "--failed",
        help="a run whose every seed failed: error, or count its failed seeds' test scores",
    ),
) -> None:
    """BLURB score: mean over the 6 task types of each type's mean dataset score."""
    result = blurb_score(read_scores(paths, failed))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    console.print(blurb_table(result))
    if result.score is not None:
        line = f"[bold]BLURB score: {result.score:.2f}[/]"
        if result.missing_datasets:
            line += (
                f" [yellow]({len(result.per_dataset)} of {len(BLURB_TYPE_OF_DATASET)} datasets; "
                "not comparable to published scores)[/]"
            )
        console.print(line)
    else:
        console.print(
            f"[bold]BLURB score: not available[/] - missing task types: {', '.join(result.missing_types)}"
        )
        if result.partial_score is not None:
            console.print(
                f"[bold]mean over the {result.types_present} of {len(BLURB_TYPES)} task types present: "
                f"{result.partial_score:.2f}[/] [yellow](no {', '.join(result.missing_types)}; not a BLURB "
                "score, not comparable to published ones)[/]"
            )
    if result.missing_datasets:
        console.print(f"missing datasets: {', '.join(result.missing_datasets)}", highlight=False)
