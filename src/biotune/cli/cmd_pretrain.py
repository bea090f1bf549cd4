"""`biotune pretrain`: continued masked-language-model pretraining into a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from biotune.cli.app import app, console, quiet_transformers


@app.command()
def pretrain(
    model: Annotated[str, typer.Option("--model", help="hub name, local folder, or alias minilm-l6")],
    corpus: Annotated[
        list[str],
        typer.Option(
            "--corpus",
            help="repeatable: a text file (one document per line), a .jsonl file (`text` field), or "
            "blurb-train (the BLURB train splits' text, less every sentence overlapping a dev/test text)",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", help="the model folder to write (and resume in)")],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="BLURB data home for blurb-train")
    ] = None,
    max_length: Annotated[int, typer.Option("--max-length", help="tokens per packed sequence")] = 128,
    tokens_per_batch: Annotated[
        int, typer.Option("--tokens-per-batch", help="tokens per optimizer step")
    ] = 4096,
    learning_rate: Annotated[
        float, typer.Option("--lr", "--learning-rate", help="peak learning rate")
    ] = 1e-4,
    warmup_ratio: Annotated[float, typer.Option("--warmup-ratio", help="share of steps warming up")] = 0.06,
    epochs: Annotated[int, typer.Option("--epochs", help="passes over the corpus, unless a budget ends")] = 1,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="budget: optimizer steps")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="budget: tokens trained on")] = None,
    save_every: Annotated[int, typer.Option("--save-every", help="steps between checkpoints")] = 500,
    eval_every: Annotated[
        int | None,
        typer.Option("--eval-every", help="steps between held-out evaluations; default --save-every"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")] = "auto",
    stop_at_step: Annotated[
        int | None,
        typer.Option(
            "--stop-at-step", help="end this invocation at this step (checkpointed); re-run to go on"
        ),
    ] = None,
    extend_vocabulary: Annotated[
        int,
        typer.Option(
            "--extend-vocabulary",
            help="add the N most frequent corpus words that the tokenizer splits into 3 or more pieces as "
            "whole tokens (each initialised from the mean of its pieces) before pretraining; 0: off",
        ),
    ] = 0,
) -> None:
    """Continue MLM pretraining (whole-word masking, packed sequences) and write a Hugging Face model folder
    that works as --model everywhere. Re-running with the same arguments resumes from the last checkpoint.

    A model without an MLM head (the packaged minilm-l6) gets a new one, tied to its input embeddings;
    BERT and RoBERTa reuse theirs. An ELECTRA discriminator is refused: pretrain its generator or a
    BERT-style model instead. --extend-vocabulary N (WordPiece tokenizers) prints and records sub-tokens
    per word on the BLURB dev text before and after.
    """
    from biotune.pretrain import PretrainConfig
    from biotune.pretrain import pretrain as run_pretrain

    quiet_transformers()

    def show(record: dict[str, Any]) -> None:
        console.print(
            f"step {record['step']}  tokens {record['tokens']}  {record['tokens_per_second']:.0f} tok/s  "
            f"train loss {record['train_loss']:.3f}  held-out loss {record['heldout_loss']:.3f}  "
            f"accuracy {record['heldout_accuracy']:.3f}",
            highlight=False,
        )

    config = PretrainConfig(
        model=model,
        corpus=corpus,
        output=output,
        data_dir=data_dir,
        max_length=max_length,
        tokens_per_batch=tokens_per_batch,
        learning_rate=learning_rate,
        warmup_ratio=warmup_ratio,
        epochs=epochs,
        max_steps=max_steps,
        max_tokens=max_tokens,
        save_every=save_every,
        eval_every=eval_every,
        seed=seed,
        device=device,
        stop_at_step=stop_at_step,
        extend_vocabulary=extend_vocabulary,
    )
    result = run_pretrain(config, on_progress=show)
    for name, report in result.corpus.items():
        console.print(
            f"{name}: {report['documents']} documents, {report['tokens']} tokens, "
            f"{report['duplicates']} duplicates and {report['dropped_dev_test']} dev/test-overlapping "
            "sentences dropped",
            highlight=False,
        )
    if result.vocabulary is not None:
        added = result.vocabulary
        fragmentation = added["fragmentation"]
        console.print(
            f"vocabulary: {added['added']} words added (of {added['requested']} asked); sub-tokens per word "
            f"{fragmentation['before']:.3f} -> {fragmentation['after']:.3f} on {added['measured_on']}",
            highlight=False,
        )
    first, last = result.history[0], result.history[-1]
    state = "finished" if result.finished else "stopped (re-run to resume)"
    console.print(
        f"{state} at step {result.steps}, {result.tokens} tokens; held-out loss "
        f"{first['heldout_loss']:.3f} -> {last['heldout_loss']:.3f}; {result.output}",
        highlight=False,
    )
