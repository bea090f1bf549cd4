"""Loading (BLURB splits, users' own files) and the `data check` logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from biotune.data.check import CheckReport, check_datasets, check_file, list_datasets
from biotune.data.loading import label_counts, load_dataset, load_own_files
from biotune.errors import ConfigError, DataError

HOC_NONE = ",".join(f"{i}_0" for i in range(10))
HOC_TWO = ",".join(f"{i}_{int(i == 2)}" for i in range(10))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- own files ----------------------------------------------------------------------------------


def test_own_ner_files_take_labels_from_train(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "Aspirin\tB-Drug\nworks\tO\n\nIL-2\tB-Gene\n")
    dev = write(tmp_path, "dev.tsv", "Ibuprofen\tB-Drug\n")
    loaded = load_own_files("ner", train, dev, name="mine")
    assert loaded.spec.labels == ("B-Drug", "B-Gene", "O") and loaded.spec.name == "mine"
    assert loaded.spec.is_custom and loaded.spec.metric == "entity-level F1"
    assert len(loaded.train) == 2 and len(loaded.dev) == 1 and loaded.test == []
    assert loaded.spec.files == {"train": str(train), "dev": str(dev)}


def test_unseen_dev_tag_names_label_file_and_word_line(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "Aspirin\tB-Drug\nworks\tO\n")
    dev = write(tmp_path, "dev.tsv", "A\tO\n\nIt\tO\nhurts\tB-Disease\n")
    with pytest.raises(DataError) as caught:
        load_own_files("ner", train, dev)
    assert (caught.value.path, caught.value.line) == (str(dev), 4)
    assert "'B-Disease'" in caught.value.problem and str(train) in caught.value.problem


def test_unseen_test_label_in_classification(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "a\tGood.\tpos\nb\tBad.\tneg\n")
    dev = write(tmp_path, "dev.tsv", "c\tFine.\tpos\n")
    test = write(tmp_path, "test.tsv", "d\tOk.\tneg\ne\tMeh.\tneutral\n")
    with pytest.raises(DataError, match="label 'neutral' never appears in the training file") as caught:
        load_own_files("classification", train, dev, test)
    assert (caught.value.path, caught.value.line) == (str(test), 2)


def test_own_re_files_negative_label(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "a\t@X$ binds @Y$.\tbinds\nb\t@X$ and @Y$.\tfalse\n")
    dev = write(tmp_path, "dev.tsv", "c\t@X$, @Y$.\tfalse\n")
    assert load_own_files("re", train, dev).spec.negative_label == "false"
    no_negative = write(tmp_path, "train2.tsv", "a\tA.\tbinds\nb\tB.\tnone\n")
    with pytest.raises(ConfigError, match="--negative-label"):
        load_own_files("re", no_negative, dev)
    assert (
        load_own_files(
            "re", no_negative, write(tmp_path, "d2.tsv", "c\tC.\tnone\n"), negative_label="none"
        ).spec.negative_label
        == "none"
    )


def test_own_multilabel_width_comes_from_train(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "0_1,1_0,2_0\tA.\t1_s0\n0_0,1_0,2_1\tB.\t1_s1\n")
    dev = write(tmp_path, "dev.tsv", "0_0,1_1,2_0\tC.\t2_s0\n")
    loaded = load_own_files("multilabel", train, dev)
    assert loaded.spec.labels == ("0", "1", "2") and loaded.train[0].labels == frozenset({0, 2})
    wide = write(tmp_path, "wide.tsv", "0_0,1_1,2_0,3_0\tC.\t2_s0\n")
    with pytest.raises(DataError, match="expected 3"):
        load_own_files("multilabel", train, wide)


def test_own_files_need_a_dev_file_and_a_known_task_type(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "a\tGood.\tpos\n")
    with pytest.raises(ConfigError, match="--dev-file"):
        load_own_files("classification", train)
    with pytest.raises(ConfigError, match="unknown task type"):
        load_own_files("ranking", train, train)


# --- BLURB splits -------------------------------------------------------------------------------


def test_missing_split_is_a_clear_error_or_recorded(tmp_path: Path) -> None:
    (tmp_path / "GAD").mkdir()
    write(tmp_path / "GAD", "dev.tsv", "index\tsentence\tlabel\n0\t@GENE$ and @DISEASE$.\t1\n")
    with pytest.raises(DataError, match="train split of GAD is missing") as caught:
        load_dataset("gad", tmp_path)
    assert "biotune data fetch GAD" in str(caught.value) and caught.value.path == str(
        tmp_path / "GAD" / "train.tsv"
    )
    loaded = load_dataset("gad", tmp_path, allow_missing=True)
    assert set(loaded.missing) == {"train", "test"} and [e.label for e in loaded.dev] == ["1"]
    with pytest.raises(ConfigError, match="unknown split"):
        load_dataset("gad", tmp_path, splits=("validation",))


def test_check_reports_mismatch_missing_and_error(tmp_path: Path) -> None:
    (tmp_path / "HoC").mkdir()
    write(
        tmp_path / "HoC", "train.tsv", f"labels\tsentence\tindex\n{HOC_NONE}\tA.\t1_s0\n{HOC_TWO}\tB.\t2_s0\n"
    )
    write(tmp_path / "HoC", "dev.tsv", f"labels\tsentence\tindex\n{HOC_NONE}\tA.\t1-s0\n")
    report = check_datasets(tmp_path, ["hoc"])
    splits = report.datasets[0].splits
    assert (splits["train"].status, splits["train"].units, splits["train"].expected_units) == (
        "mismatch",
        2,
        1295,
    )
    assert not splits["train"].known
    assert splits["dev"].status == "error" and "bad index" in splits["dev"].error
    assert splits["test"].status == "missing" and splits["test"].passed
    assert not report.passed and len(report.problems) == 2
    # the missing test file, and a train file that is not the published one (the pinned sha256)
    assert splits["train"].hash == "changed" and "pinned sha256" in str(splits["train"].hash_note)
    assert len(report.warnings) == 2
    train = load_dataset("hoc", tmp_path, ("train",)).train
    assert label_counts(report.datasets[0].spec, train) == {"cellular energetics": 1}  # hallmark index 2
    assert label_counts("multilabel", train) == {"2": 1}


@pytest.fixture(scope="module")
def real_report(shared_data: Path) -> CheckReport:
    return check_datasets(shared_data)


def test_check_on_the_real_data_passes_with_warnings(real_report: CheckReport) -> None:
    assert real_report.passed and real_report.problems == []
    assert real_report.warnings and real_report.warnings[0].startswith("ebmnlp train: file missing")
    statuses = {
        (d.spec.name, s.split): (s.status, s.known) for d in real_report.datasets for s in d.splits.values()
    }
    assert statuses.pop(("ebmnlp", "train")) == ("missing", False)
    assert statuses.pop(("BC5CDR-disease", "dev")) == ("mismatch", True)
    assert statuses.pop(("ebmnlp", "dev")) == ("mismatch", True)
    assert set(statuses.values()) == {("ok", False)} and len(statuses) == 36
    chem = real_report.datasets[0].splits["train"]
    assert (chem.examples, chem.units, chem.unit) == (4560, 5203, "mentions")


def test_list_datasets_without_any_data_still_lists_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biotune.data import paths

    monkeypatch.delenv("BIOTUNE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", tmp_path / "absent")
    home, rows = list_datasets()
    assert home is None and len(rows) == 13
    assert rows[0]["splits"]["train"] == {"file": "BC5CDR-chem/train.tsv", "expected_units": 5203}


def test_check_file_summarises_or_reports_the_error(tmp_path: Path) -> None:
    good = write(tmp_path, "ner.tsv", "Aspirin\tB\nrelief\tI\nworks\tO\n\nIt\tI\n")
    report = check_file("ner", good)
    assert report.passed and (report.examples, report.units, report.unit) == (2, 2, "mentions")
    assert report.labels == {"B": 1, "I": 2, "O": 1}
    scores = check_file("similarity", write(tmp_path, "s.tsv", "1\tA.\tB.\t1\n2\tC.\tD.\t3\n"))
    assert scores.scores == {"min": 1.0, "max": 3.0, "mean": 2.0} and scores.labels == {}
    bad = check_file("re", write(tmp_path, "bad.tsv", "a\tA.\tx\nb\tB.\n"))
    assert not bad.passed and bad.error.startswith(f"{tmp_path / 'bad.tsv'}:2:")
    with pytest.raises(ConfigError, match="unknown task type"):
        check_file("nope", good)
