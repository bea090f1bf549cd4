"""`biotune recommend`: a recipe search within a time budget, and the printout of any search's result."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from biotune.cli.app import app, console, quiet_transformers
from biotune.config import DEFAULT_MODEL, parse_seeds
from biotune.formatting import std_text
from biotune.study.search import RECOMMEND_TRIALS, SearchSummary, TrialSummary, recommend


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _lr(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def trials_table(summary: SearchSummary) -> Table:
    table = Table(title=f"search trials: {summary.model} / {summary.dataset}")
    for column in ("trial", "state", "lr", "technique", "dev per seed", "mean", "std", "score"):
        table.add_column(
            column, justify="left" if column in ("state", "technique", "dev per seed") else "right"
        )
    for trial in summary.trials:
        marked = " *" if summary.best is not None and trial.number == summary.best.number else ""
        table.add_row(
            f"{trial.number}{marked}",
            trial.state,
            _lr(trial.learning_rate),
            trial.technique or "—",
            " ".join(
                f"{_score(s.dev_score)}{'' if s.status == 'done' else f' ({s.status})'}" for s in trial.seeds
            ),
            _score(trial.mean),
            _score(trial.std),
            _score(trial.score),
        )
    return table


def _evidence(trial: TrialSummary) -> str:
    seeds = ", ".join(
        f"seed {s.seed} {_score(s.dev_score)}"
        + ("" if s.status == "done" else f" ({s.status}, counted {_score(s.counted)})")
        for s in trial.seeds
    )
    std = std_text(trial.std, len(trial.seeds)) if len(trial.seeds) > 1 else "n/a"
    return f"dev {seeds}: mean {_score(trial.mean)} ± {std}, score (mean − std) {_score(trial.score)}"


def print_search(summary: SearchSummary) -> None:
    """The trials, then the best recipe with its evidence and the command that trains it."""
    console.print(trials_table(summary))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(summary.counts.items())) or "none"
    why = "the budget was reached" if summary.stopped == "budget" else "all trials ended"
    console.print(
        f"{len(summary.trials)} trials ({counts}); this session ran {summary.seconds:.0f} s and stopped "
        f"because {why}",
        highlight=False,
    )
    best = summary.best
    if best is None:
        console.print(
            "[yellow]no trial completed yet:[/] give the search more budget or trials", highlight=False
        )
        return
    console.print(
        f"[bold]recipe[/] for {summary.dataset} with {summary.model}: learning rate {best.learning_rate!r}, "
        f"technique {best.technique} (trial {best.number})",
        highlight=False,
    )
    console.print(f"evidence: {_evidence(best)}", highlight=False)
    if summary.command:
        console.print(f"train it: {summary.command}", highlight=False, soft_wrap=True)


@app.command("recommend")
def recommend_command(
    dataset: str = typer.Argument(..., help="BLURB dataset name or alias (see `biotune datasets`)"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="hub name, local folder, or alias"),
    budget: str = typer.Option("30m", "--budget", help="time for the search: 90s, 30m, 2h, 1h30m"),
    seeds: str = typer.Option("3", "--seeds", help="seeds per trial: a count (3) or a list (1,5,7)"),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="study folder (default: runs/recommend-<dataset>-<model>)"
    ),
    max_length: int | None = typer.Option(None, "--max-length", help="tokens per input (default: registry)"),
    epochs: int | None = typer.Option(None, "--epochs", help="training epochs (default: registry)"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="examples per step (default: registry)"),
    limit_train: int | None = typer.Option(
        None, "--limit-train", help="use only the first N training examples"
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="data home (default: $BIOTUNE_DATA, ...)"),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N"),
    precision: str | None = typer.Option(None, "--precision", help="fp32, bf16, fp16, tf32, auto"),
    trials: int = typer.Option(RECOMMEND_TRIALS, "--trials", help="at most this many trials"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue the search in --output"),
) -> None:
    """Search learning rate x technique for DATASET within --budget; print the recipe and its evidence."""
    quiet_transformers()
    given = {
        "max_length": max_length,
        "epochs": epochs,
        "batch_size": batch_size,
        "limit_train": limit_train,
        "data_dir": str(data_dir) if data_dir is not None else None,
        "device": device,
        "precision": precision,
    }
    from biotune.cli.cmd_study import ConsoleProgress

    summary = recommend(
        dataset,
        model,
        budget,
        seeds=parse_seeds(seeds),
        output=output,
        train={key: value for key, value in given.items() if value is not None},
        trials=trials,
        resume=resume,
        progress=ConsoleProgress(),
    )
    print_search(summary)
