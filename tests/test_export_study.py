"""`biotune export STUDY_DIR`: the study's best model, and a card with its setting's seeds and rivals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from _run_files import real_results, seed_result
from biotune.api import load
from biotune.cli import app, cmd_train
from biotune.errors import ConfigError
from biotune.export import CARD_FILE, export_model, model_card
from biotune.report.build import mean_std
from biotune.report.tables import Stats, best_models, summarize_cells
from biotune.run_folder import ModelCard
from biotune.runs import summarize
from biotune.study import StudyStore, run_study

PAIRS = [{"sentence1": "Cells grow fast.", "sentence2": "Cells divide quickly."}]


@pytest.fixture(scope="module")
def study(tiny_bert: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real small study on the tiny model: two techniques, three seeds each, BIOSSES."""
    folder = tmp_path_factory.mktemp("study")
    values: dict[str, Any] = {
        "models": [str(tiny_bert)],
        "datasets": ["BIOSSES"],
        "techniques": {"standard": [], "reinit1": ["reinit:1"]},
        "seeds": 3,
        "hyperparameters": {"learning_rate": [1e-4], "batch_size": [16], "epochs": [1]},
        "train": {"data_dir": str(shared_data), "pooling": "mean", "pair_encoding": "siamese"},
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    run_study(path, folder / "out")
    return folder / "out"


def _cells(study: Path) -> list[Any]:
    with StudyStore(study, read_only=True) as store:
        return summarize_cells(store.runs())


def test_export_of_a_study_is_the_reports_best_model_with_every_seed_and_the_other_techniques(
    study: Path, tmp_path: Path
) -> None:
    cells = _cells(study)
    (best,) = best_models(cells)
    result = export_model(study, tmp_path / "export")
    assert result.study is not None and result.study.best.run.run_id == best.run.run_id
    assert result.seed == best.run.seed and result.selected_as_best
    exported = json.loads((result.folder / "biotune_model.json").read_text())
    assert exported["seed"] == best.run.seed
    run_folder = study / best.run.run_dir
    assert load(result.folder).predict(PAIRS) == load(run_folder, seed=best.run.seed).predict(PAIRS)

    card = (result.folder / CARD_FILE).read_text()
    assert f"the best model of the study `{study.name}`" in card
    assert f"technique **{best.cell.technique}**" in card and f"**seed {best.run.seed}**" in card
    assert "| seeds | 0, 1, 2 |" in card  # the setting's seeds, not the one seed of its run folder
    for run in best.cell.runs:  # every seed of the setting, the exported one marked
        marker = " **(this model)**" if run.seed == best.run.seed else ""
        assert f"| {run.seed}{marker} | {run.status} | {run.dev_score:.2f} | {run.test_score:.2f} |" in card
    cell = best.cell
    assert (
        f"dev: mean {cell.dev.mean:.2f} ± {cell.dev.std:.2f}, test: mean {cell.test.mean:.2f} ± "
        f"{cell.test.std:.2f} (sample std) over the 3 finished seed(s)" in card
    )
    assert f"failed runs: {cell.failed} of 3" in card
    assert "### Techniques compared in" in card
    for other in cells:  # the other technique as context, at its selected setting
        assert (
            f"| {other.finished} | {other.failed} | {other.dev.mean:.2f} ± {other.dev.std:.2f} | "
            f"{other.test.mean:.2f} ± {other.test.std:.2f} |" in card
        )
        assert f"| {other.technique}" in card


def test_cli_exports_a_study_folder_as_make_demo_prints_it(study: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(study), "--seed", "best", "--to", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert f"best model of study {study.name}" in result.output
    assert (tmp_path / "m" / "model.safetensors").is_file() or (tmp_path / "m" / "head.safetensors").is_file()


def test_study_export_errors_name_the_fix(study: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--seed chooses among the seeds of a run folder"):
        export_model(study, tmp_path / "a", seed=1)
    with pytest.raises(ConfigError, match="the study has: --model .* --dataset BIOSSES"):
        export_model(study, tmp_path / "b", dataset="NCBI-disease")
    with pytest.raises(ConfigError, match="nor a study folder"):
        export_model(tmp_path, tmp_path / "c")
    run_folder = study / best_models(_cells(study))[0].run.run_dir
    with pytest.raises(ConfigError, match="--model and --dataset choose within a study folder"):
        export_model(run_folder, tmp_path / "d", dataset="BIOSSES")


def test_a_std_over_one_seed_reads_n_a_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    seeds = [seed_result(0, "ok", dev=80.0, test=78.0)]
    assert summarize(seeds, "test").std is None
    results = real_results(
        dataset="BIOSSES",
        model="minilm-l6",
        config={**real_results().config, "dataset": "BIOSSES", "model": "minilm-l6"},
        seeds=seeds,
        summary=summarize(seeds, "test"),
        summary_dev=summarize(seeds, "dev"),
    )
    card = ModelCard(task_type="similarity", head="regression", labels=[], max_length=128)
    text = model_card(results, card, 0, [], selected_as_best=True)
    assert "test: mean 78.00 ± n/a (sample std) over 1 successful seed(s)" in text
    assert "± 0.00" not in text
    cmd_train.print_results(results)
    assert "mean 78.00 ± n/a" in capsys.readouterr().out
    assert mean_std(Stats.of([78.0])) == "78.00 ± n/a"
    assert mean_std(Stats.of([78.0, 80.0])) == "79.00 ± 1.41"
