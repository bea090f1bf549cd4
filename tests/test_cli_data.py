"""`biotune datasets` and `biotune data check` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biotune.cli import app
from biotune.errors import ConfigError

runner = CliRunner()


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare text with whitespace runs collapsed."""
    return " ".join(text.split())


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_data_check_json_on_the_real_data(shared_data: Path) -> None:
    result = runner.invoke(app, ["data", "check", "--json", "--data-dir", str(shared_data)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {d["name"]: d for d in report["datasets"]}
    assert list(by_name) == [
        "BC5CDR-chem",
        "BC5CDR-disease",
        "NCBI-disease",
        "BC2GM",
        "JNLPBA",
        "ebmnlp",
        "chemprot",
        "DDI",
        "GAD",
        "BIOSSES",
        "HoC",
        "pubmedqa",
        "BioASQ",
    ]
    for dataset in report["datasets"]:
        assert {"name", "task_type", "metric", "splits"} <= set(dataset)
        for split in dataset["splits"].values():
            assert {"examples", "units", "unit", "expected_units", "status"} <= set(split)
            if split["status"] == "ok":
                assert split["units"] == split["expected_units"]
    ebm_train = by_name["ebmnlp"]["splits"]["train"]
    assert (ebm_train["status"], ebm_train["examples"], ebm_train["expected_units"]) == (
        "missing",
        None,
        339167,
    )
    assert by_name["ebmnlp"]["splits"]["dev"]["known"] is True
    dev = by_name["BC5CDR-disease"]["splits"]["dev"]
    assert (dev["status"], dev["known"], dev["units"], dev["expected_units"]) == (
        "mismatch",
        True,
        4246,
        4244,
    )
    ncbi = by_name["NCBI-disease"]
    assert (ncbi["task_type"], ncbi["metric"]) == ("ner", "entity-level F1")
    expected = {"examples": 923, "units": 787, "unit": "mentions", "expected_units": 787, "status": "ok"}
    assert ncbi["splits"]["dev"].items() >= expected.items()
    assert report["passed"] is True and report["warnings"]


def test_data_check_table_for_one_dataset(shared_data: Path) -> None:
    result = runner.invoke(app, ["data", "check", "--dataset", "bc5-disease", "--data-dir", str(shared_data)])
    assert result.exit_code == 0, result.output
    assert "BC5CDR-disease" in result.stdout and "mismatch" in result.stdout and "known" in result.stdout
    assert "4,246" in result.stdout and "all present files match BLURB" in result.stdout


def test_data_check_fails_on_an_unexplained_mismatch(tmp_path: Path) -> None:
    write(tmp_path / "GAD", "dev.tsv", "index\tsentence\tlabel\n0\t@GENE$ and @DISEASE$.\t1\n")
    result = runner.invoke(app, ["data", "check", "--dataset", "gad", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    splits = json.loads(result.stdout)["datasets"][0]["splits"]
    assert [splits[s]["status"] for s in ("train", "dev", "test")] == ["missing", "mismatch", "missing"]
    table = runner.invoke(app, ["data", "check", "--dataset", "gad", "--data-dir", str(tmp_path)])
    assert table.exit_code == 1 and "warning" in table.stderr and "problem" in table.stderr


def test_datasets_lists_the_registry_with_sizes(tmp_path: Path) -> None:
    write(tmp_path / "BIOSSES", "train.tsv", "pair_id\tsent1\tsent2\tscore\n1\tA.\tB.\t2\n")
    result = runner.invoke(app, ["datasets", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["datasets"]}
    assert len(rows) == 13 and "ncbi" in rows["NCBI-disease"]["aliases"]
    expected = {"units": 1, "examples": 1, "status": "mismatch", "expected_units": 64}
    assert rows["BIOSSES"]["splits"]["train"].items() >= expected.items()
    assert rows["BIOSSES"]["splits"]["dev"]["status"] == "missing"
    table = runner.invoke(app, ["datasets", "--data-dir", str(tmp_path)])
    assert table.exit_code == 0 and "BIOSSES" in table.stdout and "missing" in table.stdout


def test_data_check_own_file(tmp_path: Path) -> None:
    good = write(tmp_path, "train.tsv", "a\t@X$ binds @Y$.\tbinds\nb\t@X$ and @Y$.\tnone\nc\tZ.\tnone\n")
    result = runner.invoke(app, ["data", "check", "--task-type", "re", "--file", str(good), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(good),
        "task_type": "re",
        "status": "ok",
        "examples": 3,
        "units": 3,
        "unit": "pairs",
        "labels": {"binds": 1, "none": 2},
        "passed": True,
    }
    table = runner.invoke(app, ["data", "check", "--task-type", "re", "--file", str(good)])
    assert table.exit_code == 0 and "3 examples, 3 pairs" in flat(table.stdout)
    assert "binds" in table.stdout


def test_data_check_own_file_error_is_one_clear_message(tmp_path: Path) -> None:
    bad = write(tmp_path, "dev.tsv", "Aspirin\tB\n\tO\n")
    result = runner.invoke(app, ["data", "check", "--task-type", "ner", "--file", str(bad)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert f"{bad}:2:emptytoken" in "".join(result.stderr.split())  # the path may be folded too
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args, match",
    [
        (["data", "check", "--dataset", "bc5-dizease"], "did you mean 'BC5CDR-disease'"),
        (["data", "check", "--file", "x.tsv"], "--task-type and --file"),
        (["data", "check", "--data-dir", "/nonexistent/folder"], "--data-dir"),
    ],
)
def test_user_errors_raise_biotune_errors(args: list[str], match: str) -> None:
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ConfigError) and match in str(result.exception)
