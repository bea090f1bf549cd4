"""`biotune train` and `biotune evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from biotune.cli.app import app, console, quiet_transformers
from biotune.config import load_train_config, parse_seeds
from biotune.formatting import std_text


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_results(results: dict[str, Any]) -> None:
    table = Table(
        title=f"{results['dataset']} / {results['model']} / {results.get('technique_label', 'standard')}"
    )
    for column in ("seed", "status", "best epoch", "dev", "test", "seconds", "error"):
        table.add_column(column)
    for seed in results["seeds"]:
        table.add_row(
            str(seed["seed"]),
            seed["status"],
            str(seed.get("best_epoch") or "-"),
            _fmt(seed.get("dev", {}).get("score")),
            _fmt(seed.get("test", {}).get("score")),
            f"{seed['train_seconds']:.0f}",
            seed.get("error") or "",
        )
    console.print(table)
    summary = results["summary"]
    std = std_text(summary["std"], summary["n_ok"])
    console.print(
        f"{summary['split']} score: mean {_fmt(summary['mean'])} ± {std} "
        f"(min {_fmt(summary['min'])}, max {_fmt(summary['max'])}), "
        f"ok {summary['n_ok']}, failed {summary['failed']}"
    )
    baseline = results.get("baseline", {})
    parts = [f"trivial {split} {_fmt(m.get('score'))}" for split, m in baseline.get("trivial", {}).items()]
    parts += [
        f"zero-shot cosine {split} {_fmt(m.get('score'))}"
        for split, m in baseline.get("zero_shot_cosine", {}).items()
    ]
    if parts:
        console.print("baselines: " + ", ".join(parts))
    for warning in results.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}")


@app.command()
def train(
    dataset: Annotated[
        str | None, typer.Argument(help="BLURB dataset name or alias (see `biotune datasets`)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="hub name, local folder, or alias minilm-l6 (default)")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="a count (3 = seeds 0,1,2) or a list (1,5,7)")] = None,
    technique: Annotated[
        list[str] | None,
        typer.Option(
            "--technique",
            "-t",
            help="repeatable: freeze:K, llrd:D, reinit:K, no-bias-correction, warmup:R, "
            "longer:F, early-stop:P, standard",
        ),
    ] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", "--learning-rate")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    warmup_ratio: Annotated[float | None, typer.Option()] = None,
    weight_decay: Annotated[float | None, typer.Option()] = None,
    max_length: Annotated[int | None, typer.Option()] = None,
    patience: Annotated[
        int | None, typer.Option(help="early stopping: epochs without dev improvement")
    ] = None,
    limit_train: Annotated[int | None, typer.Option(help="use only the first N training examples")] = None,
    pooling: Annotated[str | None, typer.Option(help="cls (BLURB) or mean, for sequence-level heads")] = None,
    pair_encoding: Annotated[
        str | None, typer.Option(help="similarity: cross (BLURB) or siamese (cosine of mean embeddings)")
    ] = None,
    checkpoint: Annotated[str | None, typer.Option(help="best (dev) or last epoch")] = None,
    gradient_accumulation: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda")] = None,
    train_file: Annotated[Path | None, typer.Option(help="own data: training file")] = None,
    dev_file: Annotated[Path | None, typer.Option(help="own data: dev file")] = None,
    test_file: Annotated[Path | None, typer.Option(help="own data: test file")] = None,
    task_type: Annotated[
        str | None, typer.Option(help="own data: ner|pico|re|similarity|classification|multilabel|qa")
    ] = None,
    negative_label: Annotated[str | None, typer.Option(help="own RE data: the no-relation label")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="data home (default $BIOTUNE_DATA, else ../shared/data)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of the same options")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="run folder")] = None,
    save_model: Annotated[bool | None, typer.Option("--save-model/--no-save-model")] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="allow model code from the model folder/hub")
    ] = False,
) -> None:
    """Fine-tune a model on a dataset over several seeds; write config, metrics, predictions, models."""
    from biotune.runs import run_training

    overrides: dict[str, Any] = {
        "dataset": dataset,
        "model": model,
        "seeds": parse_seeds(seeds) if seeds else None,
        "techniques": technique or None,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "epochs": epochs,
        "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay,
        "max_length": max_length,
        "patience": patience,
        "limit_train": limit_train,
        "pooling": pooling,
        "pair_encoding": pair_encoding,
        "checkpoint": checkpoint,
        "gradient_accumulation": gradient_accumulation,
        "device": device,
        "train_file": train_file,
        "dev_file": dev_file,
        "test_file": test_file,
        "task_type": task_type,
        "negative_label": negative_label,
        "data_dir": data_dir,
        "output": output,
        "save_model": save_model,
        "trust_remote_code": trust_remote_code or None,
    }
    cfg = load_train_config(config, overrides)
    quiet_transformers()
    out = cfg.output or Path("runs") / (cfg.dataset or (cfg.train_file.stem if cfg.train_file else "run"))
    results = run_training(cfg, out, progress=True)
    print_results(results)
    console.print(f"wrote {out}/results.json")


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
