"""The BLURB score (Gu et al.'s PubMedBERT row as the check) and `biotune blurb`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from _run_files import real_results, seed_result, summary, write_results
from biotune.cli import app
from biotune.data.registry import all_specs
from biotune.errors import BiotuneError, ConfigError, DataError
from biotune.metrics import BLURB_TYPE_OF_DATASET, blurb_score, read_scores

# Gu et al. 2021, PubMedBERT-base test results, keyed by the names people write (aliases and display names)
PUBMEDBERT = {
    "BC5-chem": 93.33,
    "BC5-disease": 85.62,
    "NCBI-disease": 87.82,
    "BC2GM": 84.52,
    "JNLPBA": 79.10,
    "EBM PICO": 73.38,
    "ChemProt": 77.24,
    "DDI": 82.36,
    "GAD": 83.96,
    "BIOSSES": 92.30,
    "HoC": 82.32,
    "PubMedQA": 55.84,
    "BioASQ": 87.56,
}
PUBMEDBERT_TYPE_MEANS = {
    "NER": 86.078,
    "PICO": 73.38,
    "RE": 81.187,
    "similarity": 92.30,
    "classification": 82.32,
    "QA": 71.70,
}
REGISTRY_TO_BLURB_TYPE = {
    "ner": "NER",
    "pico": "PICO",
    "re": "RE",
    "similarity": "similarity",
    "multilabel": "classification",
    "qa": "QA",
}

runner = CliRunner()


def test_benchmark_composition_matches_the_registry() -> None:
    specs = all_specs()
    assert sorted(BLURB_TYPE_OF_DATASET) == sorted(spec.name for spec in specs)
    for spec in specs:
        assert BLURB_TYPE_OF_DATASET[spec.name] == REGISTRY_TO_BLURB_TYPE[spec.task_type]


def test_pubmedbert_row_gives_81_16() -> None:
    result = blurb_score(PUBMEDBERT)
    for kind, mean in PUBMEDBERT_TYPE_MEANS.items():
        assert result.per_type[kind] == pytest.approx(mean, abs=5e-4)
    assert list(result.per_type) == list(PUBMEDBERT_TYPE_MEANS)
    assert result.score == pytest.approx(81.161, abs=5e-4)
    assert f"{result.score:.2f}" == "81.16"
    assert result.per_dataset["BC5CDR-chem"] == 93.33 and result.per_dataset["ebmnlp"] == 73.38
    assert result.missing_types == [] and result.missing_datasets == []


def test_partial_type_is_averaged_over_what_is_given() -> None:
    scores = dict(PUBMEDBERT)
    del scores["BC2GM"], scores["JNLPBA"]
    result = blurb_score(scores)
    assert result.per_type["NER"] == pytest.approx((93.33 + 85.62 + 87.82) / 3)
    assert result.missing_datasets == ["BC2GM", "JNLPBA"]
    assert result.missing_types == []
    assert result.score is not None


def test_missing_type_gives_no_score() -> None:
    scores = {k: v for k, v in PUBMEDBERT.items() if k not in ("PubMedQA", "BioASQ", "EBM PICO")}
    result = blurb_score(scores)
    assert result.score is None
    assert result.missing_types == ["PICO", "QA"]
    assert result.missing_datasets == ["ebmnlp", "pubmedqa", "BioASQ"]
    assert "QA" not in result.per_type


def test_bad_score_tables_are_refused() -> None:
    with pytest.raises(ConfigError, match="given twice"):
        blurb_score({"BC5-chem": 90.0, "BC5CDR-chem": 91.0})
    with pytest.raises(ConfigError, match="unknown dataset"):
        blurb_score({"MedNLI": 80.0})
    with pytest.raises(ConfigError, match="0-100 scale"):
        blurb_score({"GAD": 183.0})
    with pytest.raises(ConfigError, match="finite"):
        blurb_score({"GAD": float("nan")})


# ------------------------------------------------------------------------------------------------ CLI


def write_run(folder: Path, dataset: str, mean: float | None, **changes: Any) -> Path:
    """A real run's results.json on another dataset, with the summary's mean (and split, n_ok) given."""
    return write_results(folder, real_results(dataset=dataset, summary=summary(mean, **changes)))


def test_cli_scores_json_prints_81_16(tmp_path: Path) -> None:
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(PUBMEDBERT), encoding="utf-8")
    result = runner.invoke(app, ["blurb", str(scores)])
    assert result.exit_code == 0, result.output
    assert "BLURB score: 81.16" in result.output
    assert "86.08" in result.output and "71.70" in result.output


def test_cli_json_output(tmp_path: Path) -> None:
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(PUBMEDBERT), encoding="utf-8")
    result = runner.invoke(app, ["blurb", str(scores), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["score"] == pytest.approx(81.161, abs=5e-4)
    assert data["per_type"]["RE"] == pytest.approx(81.187, abs=5e-4)
    assert data["missing_types"] == []


def test_cli_run_folders_and_study_folder(tmp_path: Path) -> None:
    study = tmp_path / "study"
    write_run(study / "ncbi-standard", "NCBI-disease", 80.0, split="test")
    write_run(study / "gad" / "seeds-5", "GAD", 70.0)  # two levels down
    single = write_run(tmp_path / "biosses-run", "BIOSSES", 60.0)
    assert read_scores([study, single]) == {"NCBI-disease": 80.0, "GAD": 70.0, "BIOSSES": 60.0}

    result = runner.invoke(app, ["blurb", str(study), str(single), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["score"] is None
    assert data["per_type"] == {"NER": 80.0, "RE": 70.0, "similarity": 60.0}
    assert data["missing_types"] == ["PICO", "classification", "QA"]
    assert "BC5CDR-chem" in data["missing_datasets"]

    table = runner.invoke(app, ["blurb", str(study), str(single)])
    assert table.exit_code == 0, table.output
    assert "not available" in table.output
    assert "missing task types: PICO, classification, QA" in table.output
    assert "(over 1 of 5)" in table.output


def test_cli_flags_a_score_over_part_of_the_datasets(tmp_path: Path) -> None:
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({k: v for k, v in PUBMEDBERT.items() if k != "JNLPBA"}), encoding="utf-8")
    result = runner.invoke(app, ["blurb", str(scores)])
    assert result.exit_code == 0, result.output
    assert "(12 of 13 datasets; not comparable" in result.output
    assert "missing datasets: JNLPBA" in result.output


def test_cli_refuses_a_dataset_twice(tmp_path: Path) -> None:
    write_run(tmp_path / "study" / "a", "GAD", 70.0)
    write_run(tmp_path / "study" / "b", "gad", 72.0)
    result = runner.invoke(app, ["blurb", str(tmp_path / "study")])
    assert isinstance(result.exception, BiotuneError)
    assert "pass one result folder per dataset" in str(result.exception)


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ({"dataset": "GAD", "summary": summary(None, n_ok=0, failed=1)}, "every seed"),
        ({"dataset": "GAD", "summary": summary(70.0, split="dev")}, "not test"),
        ({"dataset": "my-own", "summary": summary(70.0)}, "not .*BLURB|BLURB datasets"),
        ('{"dataset": "GAD"', "not valid JSON"),
    ],
)
def test_cli_explains_unusable_results(tmp_path: Path, contents: dict[str, Any] | str, message: str) -> None:
    run = tmp_path / "run"
    if isinstance(contents, str):
        run.mkdir()
        (run / "results.json").write_text(contents, encoding="utf-8")
    else:
        write_results(run, real_results(**contents))
    result = runner.invoke(app, ["blurb", str(run)])
    assert isinstance(result.exception, DataError)
    assert str(run / "results.json") in str(result.exception)
    assert re.search(message, str(result.exception))


def test_cli_refuses_empty_folder_and_missing_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["blurb", str(tmp_path)])
    assert isinstance(result.exception, ConfigError) and "no results.json" in str(result.exception)
    result = runner.invoke(app, ["blurb", str(tmp_path / "nope.json")])
    assert isinstance(result.exception, ConfigError) and "no such file" in str(result.exception)


def test_a_partial_score_covers_the_types_present_and_says_how_many() -> None:
    scores = {k: v for k, v in PUBMEDBERT.items() if k != "EBM PICO"}
    result = blurb_score(scores)
    assert result.score is None and result.missing_types == ["PICO"] and result.types_present == 5
    # by hand: the five type means of Gu et al.'s row other than PICO
    expected = (86.078 + 81.18666666666667 + 92.30 + 82.32 + 71.70) / 5
    assert result.partial_score == pytest.approx(expected, abs=1e-9)
    assert blurb_score(PUBMEDBERT).partial_score is None  # complete: the real score, no partial one


def test_cli_counts_a_run_whose_seeds_all_failed_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "collapsed"
    seeds = [seed_result(0, "failed", dev=1.0, test=10.0), seed_result(1, "failed", dev=2.0, test=20.0)]
    write_results(folder, real_results(seeds=seeds, summary=summary(None, n_ok=0, failed=2)))
    write_run(tmp_path / "gad", "GAD", 80.0, n_ok=1, split="test")
    refused = runner.invoke(app, ["blurb", str(folder), str(tmp_path / "gad")])
    assert isinstance(refused.exception, DataError)
    assert "every seed of this BIOSSES run failed" in str(refused.exception)
    counted = runner.invoke(app, ["blurb", str(folder), str(tmp_path / "gad"), "--failed", "count", "--json"])
    assert counted.exit_code == 0, counted.output
    data = json.loads(counted.output)
    assert data["per_dataset"] == {"GAD": 80.0, "BIOSSES": 15.0}
    assert data["types_present"] == 2 and data["partial_score"] == pytest.approx((80.0 + 15.0) / 2)
    shown = runner.invoke(app, ["blurb", str(folder), str(tmp_path / "gad"), "--failed", "count"])
    assert "mean over the 2 of 6 task types present: 47.50" in " ".join(shown.output.split())


def test_the_reference_row_is_gu_et_als_and_scores_81_16() -> None:
    from biotune.metrics import PUBMEDBERT_TEST

    assert blurb_score(PUBMEDBERT_TEST).score == pytest.approx(blurb_score(PUBMEDBERT).score)
    assert round(blurb_score(PUBMEDBERT_TEST).score, 2) == 81.16
