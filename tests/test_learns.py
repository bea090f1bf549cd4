"""Training learns: the real default model on a real slice of NCBI-disease clearly beats the trivial
baseline. Every other training test uses a tiny random model, which shows the path runs, not that it
learns; this is the one that would catch a loss, label or optimizer bug that leaves scores near zero."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from _slices import _slice_blocks
from biotune.config import DEFAULT_MODEL, TrainConfig
from biotune.runs import run_training

TRAIN_SENTENCES = 1000
DEV_SENTENCES = 300  # a third of dev: the score is a real entity F1, for a third of the evaluation time


@pytest.mark.slow
def test_the_default_model_learns_ncbi_disease_from_1000_sentences(shared_data: Path, tmp_path: Path) -> None:
    ncbi = shared_data / "NCBI-disease"
    train = tmp_path / "train.tsv"
    dev = tmp_path / "dev.tsv"
    train.write_text(_slice_blocks((ncbi / "train.tsv").read_text(encoding="utf-8"), TRAIN_SENTENCES))
    dev.write_text(_slice_blocks((ncbi / "dev.tsv").read_text(encoding="utf-8"), DEV_SENTENCES))
    config = TrainConfig(
        train_file=train,
        dev_file=dev,
        task_type="ner",
        model=DEFAULT_MODEL,
        seeds=[0],
        epochs=2,
        batch_size=16,
        learning_rate=1e-4,
        max_length=128,
        save_model=False,
    )
    started = time.perf_counter()
    results = run_training(config, tmp_path / "run")
    seconds = time.perf_counter() - started

    assert results.featurization["train"].examples == TRAIN_SENTENCES
    assert results.featurization["dev"].examples == DEV_SENTENCES
    seed = results.seeds[0]
    trivial = results.baseline.trivial["dev"].score
    assert seed.status == "ok", seed.error
    assert seed.dev is not None and seed.dev.metric == "entity_f1" and trivial == 0.0  # all-O finds none
    assert seed.dev.score > 50.0, seed.history
    # each epoch improves dev and lowers the training loss
    first, second = seed.history
    assert first.train_loss is not None and second.train_loss is not None
    assert second.dev > first.dev and second.train_loss < first.train_loss
    print(f"dev entity F1 {seed.dev.score:.2f} after {seconds:.0f} s")
