"""`biotune train` and `biotune evaluate`."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from biotune.cli.app import app, console, quiet_transformers
from biotune.cli.options import config_values, model_flags, with_signature
from biotune.config import TrainConfig, load_train_config
from biotune.formatting import std_text
from biotune.run_folder import RESULTS_FILE, RunResults


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_results(results: RunResults) -> None:
    table = Table(title=f"{results.dataset} / {results.model} / {results.technique_label}")
    for column in ("seed", "status", "best epoch", "dev", "test", "seconds", "error"):
        table.add_column(column)
    for seed in results.seeds:
        table.add_row(
            str(seed.seed),
            seed.status,
            str(seed.best_epoch or "-"),
            _fmt(seed.score("dev")),
            _fmt(seed.score("test")),
            f"{seed.train_seconds:.0f}",
            seed.error or "",
        )
    console.print(table)
    summary = results.summary
    std = std_text(summary.std, summary.n_ok)
    console.print(
        f"{summary.split} score: mean {_fmt(summary.mean)} ± {std} "
        f"(min {_fmt(summary.min)}, max {_fmt(summary.max)}), "
        f"ok {summary.n_ok}, failed {summary.failed}"
    )
    baseline = results.baseline
    parts = [f"trivial {split} {_fmt(m.score)}" for split, m in baseline.trivial.items()]
    parts += [
        f"zero-shot cosine {split} {_fmt(m.score)}" for split, m in (baseline.zero_shot_cosine or {}).items()
    ]
    if parts:
        console.print("baselines: " + ", ".join(parts))
    for warning in results.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


# Spellings kept from before the flags were generated; every other field is `--kebab-case` of its name.
TRAIN_FLAG_NAMES: dict[str, tuple[str, ...]] = {
    "learning_rate": ("--lr", "--learning-rate"),
    "techniques": ("--technique", "-t"),
    "output": ("--output", "-o"),
}
TRAIN_ARGUMENTS = ("dataset",)
TRAIN_FLAGS = model_flags(
    TrainConfig,
    names=TRAIN_FLAG_NAMES,
    arguments=TRAIN_ARGUMENTS,
)
CONFIG_OPTION = inspect.Parameter(
    "config",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    default=None,
    annotation=Annotated[Path | None, typer.Option("--config", help="YAML file of the same options")],
)


def train(config: Path | None = None, **given: Any) -> None:
    """Fine-tune a model on a dataset over several seeds; write config, metrics, predictions, models.

    Every option is a `TrainConfig` field (a YAML key of the same name); flags override the --config file.
    """
    from biotune.runs import run_training

    cfg = load_train_config(config, config_values(TRAIN_FLAGS, given))
    quiet_transformers()
    out = cfg.output or Path("runs") / (cfg.dataset or (cfg.train_file.stem if cfg.train_file else "run"))
    results = run_training(cfg, out, progress=True)
    print_results(results)
    console.print(f"wrote {out / RESULTS_FILE}")


app.command("train")(with_signature(train, TRAIN_FLAGS, [CONFIG_OPTION]))


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `biotune train`")],
    split: Annotated[str, typer.Option(help="dev or test")] = "test",
    with_model: Annotated[
        bool,
        typer.Option(
            "--model/--predictions", help="re-run the saved models instead of re-scoring predictions"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Score a run again: its saved predictions (default) or its saved models on the split's data."""
    from biotune.evaluation import rescore_models, rescore_predictions

    quiet_transformers()
    scores = rescore_models(run_dir, split) if with_model else rescore_predictions(run_dir, split)
    if as_json:
        console.print_json(json.dumps(scores))
        return
    table = Table(title=f"{scores['dataset']} {split} (from saved {scores['source']})")
    table.add_column("seed")
    table.add_column("score")
    for seed, metrics in scores["seeds"].items():
        table.add_row(seed, _fmt(metrics["score"]))
    console.print(table)
