"""The BLURB registry (names, aliases, BLURB-table facts), custom specs and the data-home lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from biotune.data import paths
from biotune.data.paths import resolve_data_dir
from biotune.data.registry import all_specs, custom_spec, get_spec, task_type_of
from biotune.errors import ConfigError
from biotune.tasks import TASK_TYPES

BLURB_ORDER = [
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


def test_all_specs_in_blurb_table_order() -> None:
    assert [spec.name for spec in all_specs()] == BLURB_ORDER


@pytest.mark.parametrize(
    "query, name",
    [
        ("bc5-chem", "BC5CDR-chem"),
        ("BC5-CHEM", "BC5CDR-chem"),
        ("bc5cdr-disease", "BC5CDR-disease"),
        ("BC5-disease", "BC5CDR-disease"),
        ("ncbi", "NCBI-disease"),
        ("EBM PICO", "ebmnlp"),
        ("pico", "ebmnlp"),
        ("ebm-pico", "ebmnlp"),
        ("ChemProt", "chemprot"),
        ("ddi", "DDI"),
        ("gad", "GAD"),
        ("biosses", "BIOSSES"),
        ("hoc", "HoC"),
        ("PubMedQA", "pubmedqa"),
        ("bioasq", "BioASQ"),
        ("  jnlpba ", "JNLPBA"),
    ],
)
def test_get_spec_by_name_display_name_or_alias(query: str, name: str) -> None:
    assert get_spec(query).name == name


def test_every_alias_and_display_name_resolves_to_its_own_spec() -> None:
    for spec in all_specs():
        for key in (spec.name, spec.display_name, *spec.aliases):
            assert get_spec(key) is spec
        assert all(alias == alias.lower() for alias in spec.aliases)


def test_unknown_name_lists_known_names_and_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as caught:
        get_spec("bc5-dizease")
    message = str(caught.value)
    assert "did you mean 'BC5CDR-disease'" in message
    assert all(name in message for name in BLURB_ORDER)
    with pytest.raises(ConfigError, match="known datasets"):
        get_spec("zzzzzz")


def test_blurb_table_facts() -> None:
    assert get_spec("bc2gm").expected_units == {"train": 15197, "dev": 3061, "test": 6325}
    assert get_spec("pico").expected_units == {"train": 339167, "dev": 85321, "test": 16364}
    assert get_spec("ddi").expected_units == {"train": 25296, "dev": 2496, "test": 5716}
    assert get_spec("hoc").unit == "abstracts"
    assert get_spec("pico").unit == "labelled tokens"
    assert {spec.name: spec.num_seeds for spec in all_specs() if spec.num_seeds == 10} == {
        "BIOSSES": 10,
        "pubmedqa": 10,
        "BioASQ": 10,
    }
    ten = ("BIOSSES", "pubmedqa", "BioASQ")
    assert all(spec.num_seeds == 5 for spec in all_specs() if spec.name not in ten)
    assert {spec.name for spec in all_specs() if spec.known_differences} == {"BC5CDR-disease", "ebmnlp"}
    assert "4,246" in get_spec("bc5-disease").known_differences["dev"]
    assert "87,308" in get_spec("ebmnlp").known_differences["dev"]


def test_task_types_labels_and_negative_labels() -> None:
    assert {spec.task_type for spec in all_specs()} <= set(TASK_TYPES)
    assert [task_type_of(n) for n in ("ncbi", "pico", "gad", "biosses", "hoc", "bioasq")] == [
        "ner",
        "pico",
        "re",
        "similarity",
        "multilabel",
        "qa",
    ]
    assert get_spec("ncbi").labels == ("B", "I", "O")
    assert get_spec("pico").labels == ("I-INT", "I-OUT", "I-PAR", "O")
    assert get_spec("chemprot").labels == ("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false")
    assert get_spec("pubmedqa").labels == ("yes", "no", "maybe")
    assert get_spec("bioasq").labels == ("yes", "no")
    assert get_spec("biosses").labels == ()
    hoc = get_spec("hoc").labels
    assert len(hoc) == 10
    assert (hoc[0], hoc[-1]) == ("activating invasion and metastasis", "tumor promoting inflammation")
    assert {s.name: s.negative_label for s in all_specs() if s.negative_label} == {
        "chemprot": "false",
        "DDI": "DDI-false",
        "GAD": "0",
    }
    for spec in all_specs():
        if spec.negative_label:
            assert spec.negative_label in spec.labels


def test_files_and_defaults() -> None:
    assert get_spec("pubmedqa").files == {
        "train": "pubmedqa/pqal_fold0/train_set.json",
        "dev": "pubmedqa/pqal_fold0/dev_set.json",
        "test": "pubmedqa/test_set.json",
    }
    assert get_spec("ddi").files["train"] == "DDI/train.tsv"
    jnlpba = get_spec("jnlpba").defaults
    assert (jnlpba.batch_size, jnlpba.learning_rate, jnlpba.epochs, jnlpba.warmup_ratio) == (16, 1e-5, 5, 0.1)
    assert get_spec("hoc").defaults.learning_rate == 4e-5 and get_spec("hoc").max_length == 512
    assert get_spec("chemprot").max_length == 256
    assert hash(get_spec("ddi")) == hash(get_spec("DDI"))  # specs can key dicts despite their dict fields


def test_custom_spec_metric_unit_and_negative_label() -> None:
    classification = custom_spec("classification", ["neg", "pos"], name="mine")
    assert classification.metric == "accuracy and macro F1" and classification.name == "mine"
    assert classification.is_custom and classification.expected_units == {}
    assert custom_spec("re", ["CPR:3", "false"]).negative_label == "false"
    assert custom_spec("re", ["0", "1"]).negative_label == "0"
    assert custom_spec("re", ["none", "rel"], negative_label="none").negative_label == "none"
    with pytest.raises(ConfigError, match="--negative-label"):
        custom_spec("re", ["none", "rel"])
    with pytest.raises(ConfigError, match="not one of the labels"):
        custom_spec("re", ["none", "rel"], negative_label="false")
    with pytest.raises(ConfigError, match="unknown task type"):
        custom_spec("parsing", [])


def test_resolve_data_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, from_env = tmp_path / "explicit", tmp_path / "env"
    explicit.mkdir()
    from_env.mkdir()
    monkeypatch.setenv("BIOTUNE_DATA", str(from_env))
    assert resolve_data_dir(explicit) == explicit
    assert resolve_data_dir() == from_env
    monkeypatch.delenv("BIOTUNE_DATA")
    work = tmp_path / "project" / "repo"
    work.mkdir(parents=True)
    (tmp_path / "project" / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert resolve_data_dir().resolve() == (tmp_path / "project" / "shared" / "data").resolve()


def test_resolve_data_dir_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--data-dir"):
        resolve_data_dir(tmp_path / "nope")
    monkeypatch.setenv("BIOTUNE_DATA", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="BIOTUNE_DATA"):
        resolve_data_dir()
    monkeypatch.delenv("BIOTUNE_DATA")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "CHECKOUT_DATA_DIR", tmp_path / "absent")
    monkeypatch.setattr(paths, "user_data_home", lambda: tmp_path / "no-user-folder")
    with pytest.raises(ConfigError, match="BIOTUNE_DATA=DIR") as raised:
        resolve_data_dir()
    assert "biotune data fetch" in str(raised.value) and "--data-dir" in str(raised.value)
    (tmp_path / "no-user-folder").mkdir()  # what `biotune data fetch` creates: found last
    assert resolve_data_dir() == tmp_path / "no-user-folder"
