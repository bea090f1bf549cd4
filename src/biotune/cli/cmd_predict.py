"""`biotune predict` and `biotune export`: use what `biotune train` saved."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from biotune.cli.app import app, err_console, quiet_transformers
from biotune.errors import ConfigError

LARGE_INPUT = 200  # inputs: from here on a progress bar (on stderr) is worth its line


@contextmanager
def _progress(total: int) -> Iterator[Any]:
    if total < LARGE_INPUT:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("predict", total=total)
        yield lambda done: bar.advance(task, done)


@app.command()
def predict(
    path: Annotated[
        Path, typer.Argument(help="a run folder, a seed-N folder, or a model folder (exported too)")
    ],
    text: Annotated[str | None, typer.Option("--text", help="one text to predict on")] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="plain text (one document per line) or JSONL")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL file (default: stdout)")
    ] = None,
    seed: Annotated[str, typer.Option(help="run folders: best (dev score) or a seed number")] = "best",
    batch_size: Annotated[int, typer.Option(help="inputs per model step")] = 32,
    threshold: Annotated[
        float | None, typer.Option(help="multi-label (HoC) models: probability above which a label is given")
    ] = None,
    input_format: Annotated[
        str, typer.Option("--format", help="auto (.jsonl/.json are JSONL), text, or jsonl")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    backend: Annotated[
        str, typer.Option(help="auto (an exported model.onnx with onnxruntime, else torch), torch, onnx")
    ] = "auto",
) -> None:
    """Predict with a trained model: one JSON row per input (entities with character offsets for NER/PICO)."""
    from biotune.api import load
    from biotune.predict import InputItem, read_inputs, write_rows

    if (text is None) == (input_file is None):
        raise ConfigError('give exactly one of --text "..." or --input FILE')
    items = [InputItem(text, "--text")] if text is not None else read_inputs(input_file, input_format)
    quiet_transformers()
    predictor = load(path, seed=seed, device=device, batch_size=batch_size, backend=backend)
    if threshold is not None and not predictor.task.uses_threshold:
        raise ConfigError(f"--threshold applies to multi-label models; this one is {predictor.task_type}")
    with _progress(len(items)) as on_progress:
        rows = predictor.predict_iter(items, threshold=threshold, on_progress=on_progress)
        if output is None:
            write_rows(rows, sys.stdout)
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("w", encoding="utf-8") as handle:
            count = write_rows(rows, handle)
    err_console.print(f"wrote {count} predictions to {output}", highlight=False, soft_wrap=True)


@app.command("export")
def export(
    run_dir: Annotated[
        Path, typer.Argument(help="a run folder of `biotune train`, or a study folder (its best model)")
    ],
    to: Annotated[Path, typer.Option("--to", help="the folder to write (new or empty)")],
    seed: Annotated[str, typer.Option(help="run folders: best (dev score) or a seed number")] = "best",
    overwrite: Annotated[bool, typer.Option(help="replace an earlier export in --to")] = False,
    export_format: Annotated[
        str, typer.Option("--format", help="hf (Hugging Face folder) or onnx (that folder + model.onnx)")
    ] = "hf",
    quantize: Annotated[
        str | None, typer.Option(help="--format onnx: int8 (onnxruntime dynamic quantization)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="study folders: which model's best")] = None,
    dataset: Annotated[str | None, typer.Option(help="study folders: which dataset's best")] = None,
) -> None:
    """Export one seed (or a study's best model) as a Hugging Face model folder with a model card."""
    from biotune.export import CARD_FILE, export_model

    quiet_transformers()
    result = export_model(
        run_dir,
        to,
        seed=seed,
        overwrite=overwrite,
        export_format=export_format,
        quantize=quantize,
        model=model,
        dataset=dataset,
    )
    if result.study is not None:
        run = result.study.best.run
        how = f"best model of study {result.study.name}: {run.model} / {run.dataset} / {run.technique}"
    else:
        how = "best dev score" if result.selected_as_best else "as asked"
    err_console.print(
        f"exported seed {result.seed} ({how}) to {result.folder}; model card: {result.folder / CARD_FILE}",
        highlight=False,
        soft_wrap=True,
    )
    if result.onnx is not None:
        precision = result.onnx.quantization or "fp32"
        err_console.print(
            f"ONNX ({precision}): {result.onnx.path}, largest logit difference to torch on the check "
            f"batches {result.onnx.max_difference:.2g}",
            highlight=False,
            soft_wrap=True,
        )
