"""Small corpora get enough optimizer steps: own files' default epochs rise, and a short run says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from _slices import write_slice
from biotune.config import TrainConfig
from biotune.runs import MIN_OPTIMIZER_STEPS, OWN_DATA_MAX_EPOCHS, enough_steps, resolve_config


def test_a_120_sentence_corpus_under_the_defaults_gets_more_epochs() -> None:
    # 120 examples in batches of 16: 8 steps an epoch, 24 in 3 epochs; 13 epochs give 104 >= 100
    epochs, notes = enough_steps(120, 16, 3, epochs_given=False, own_files=True)
    assert epochs == 13 and len(notes) == 1
    assert "raised from the default 3 to 13" in notes[0] and "only 24 optimizer steps" in notes[0]


def test_the_raise_is_capped_and_then_warned_about() -> None:
    epochs, notes = enough_steps(8, 16, 3, epochs_given=False, own_files=True)
    assert epochs == OWN_DATA_MAX_EPOCHS and OWN_DATA_MAX_EPOCHS < MIN_OPTIMIZER_STEPS
    assert any(f"only {OWN_DATA_MAX_EPOCHS} optimizer steps" in note for note in notes)


def test_given_epochs_and_registry_datasets_are_left_alone() -> None:
    assert enough_steps(120, 16, 3, epochs_given=True, own_files=True)[0] == 3
    # a registry dataset keeps its published protocol, silently (BIOSSES: 64 pairs)
    assert enough_steps(64, 16, 3, epochs_given=False, own_files=False) == (3, [])
    assert enough_steps(5000, 16, 3, epochs_given=False, own_files=True) == (3, [])


def test_resolve_config_applies_it_to_own_files(shared_data: Path, tmp_path: Path) -> None:
    task_type, files = write_slice(shared_data, "NCBI-disease", tmp_path, 120)
    config = TrainConfig(train_file=files["train"], dev_file=files["dev"], task_type=task_type)
    prepared = resolve_config(config)
    assert prepared.config.batch_size == 16 and prepared.config.epochs == 13
    assert prepared.notes and "raised" in prepared.notes[0]
    explicit = resolve_config(config.model_copy(update={"epochs": 3}))
    assert explicit.config.epochs == 3 and "only 24 optimizer steps" in explicit.notes[0]


@pytest.mark.parametrize("examples", [1600, 10_000])
def test_a_large_corpus_keeps_the_defaults(examples: int) -> None:
    assert enough_steps(examples, 16, 3, epochs_given=False, own_files=True) == (3, [])
