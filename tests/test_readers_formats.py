"""Users' own files in the formats their other tools write: JSON Lines and CSV with the Hugging Face
examples' columns, CoNLL for NER; told apart by extension and content, or named; errors name file:line."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from _slices import slice_config
from biotune.config import TrainConfig
from biotune.data.check import check_file
from biotune.data.loading import load_own_files
from biotune.data.readers import (
    ReadOptions,
    read_conll,
    read_labeled_records,
    read_question_records,
    read_scored_records,
    read_tagged_records,
    read_tagged_tsv,
)
from biotune.errors import ConfigError, DataError
from biotune.runs import resolve_config, run_training
from biotune.tasks import read_file

AUTO = ReadOptions()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


# --- NER: JSON Lines, CSV, CoNLL ----------------------------------------------------------------------


def test_ner_json_lines_with_tag_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.jsonl",
        jsonl([{"id": "7", "tokens": ["IL-2", "gene"], "ner_tags": ["B", "I"], "pos_tags": [1, 2]}])
        + "\n"
        + jsonl([{"id": "8", "tokens": ["No"], "ner_tags": ["O"]}]),
    )
    first, second = read_file("ner", path, options=AUTO)
    assert (first.id, first.words, first.tags, first.source) == (
        "7",
        ("IL-2", "gene"),
        ("B", "I"),
        f"{path}:1",
    )
    assert (second.id, second.source, second.word_lines) == ("8", f"{path}:3", False)


def test_ner_integer_tags_need_the_tag_names(tmp_path: Path) -> None:
    # what `datasets`' to_json() writes for a ClassLabel column: integers, and a .json suffix
    path = write(tmp_path, "train.json", jsonl([{"tokens": ["Aspirin", "asthma"], "ner_tags": [1, 0]}] * 2))
    with pytest.raises(DataError, match="--tag-names") as error:
        read_file("ner", path, options=AUTO)
    assert error.value.line == 1 and error.value.fix
    sentences = read_file("ner", path, options=ReadOptions(tag_names=("O", "B", "I")))
    assert [s.tags for s in sentences] == [("B", "O"), ("B", "O")]
    assert [s.id for s in sentences] == ["train:1", "train:2"]
    with pytest.raises(DataError, match="outside the 1 tag names") as error:
        read_file("ner", path, options=ReadOptions(tag_names=("O",)))
    assert error.value.line == 1


def test_ner_csv_cells_hold_lists_or_spaced_items(tmp_path: Path) -> None:
    path = tmp_path / "dev.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tokens", "ner_tags"])
        writer.writerow([str(["IL-2", "gene,", "x"]), str(["B", "I", "O"])])  # pandas writes Python lists
        writer.writerow(['["a", "b"]', "O O"])
    first, second = read_file("ner", path, options=AUTO)
    assert first.words == ("IL-2", "gene,", "x") and first.tags == ("B", "I", "O")
    assert (second.words, second.tags, second.source) == (("a", "b"), ("O", "O"), f"{path}:3")


def test_conll_columns_docstart_and_blank_lines(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    path = write(tmp_path, "train.txt", text)
    first, second = read_file("ner", path, options=AUTO)  # told apart by content
    assert first.words == ("EU", "rejects") and first.tags == ("B-ORG", "O")
    assert (first.source, second.source, second.tags) == (f"{path}:3", f"{path}:6", ("B-PER",))
    assert read_conll(path) == [first, second]
    bad = write(tmp_path, "bad.conll", "EU NNP B-NP B-ORG\nrejects B-VP O\nx NN B-NP O\n")
    with pytest.raises(DataError, match="3 columns where the file's lines have 4") as error:
        read_file("ner", bad, options=AUTO)
    assert error.value.line == 2
    alone = write(tmp_path, "alone.conll", "EU B-ORG\nrejects\n")
    with pytest.raises(DataError, match="without its tag") as error:
        read_conll(alone)
    assert error.value.line == 2


def test_blurb_tsv_is_still_read_as_tsv(tmp_path: Path) -> None:
    path = write(tmp_path, "train.tsv", "Aspirin\tB\ncauses\tO\n\nNo\tO\n")
    assert read_file("ner", path, options=AUTO) == read_tagged_tsv(path)


def test_record_errors_name_the_line(tmp_path: Path) -> None:
    cases = {
        '{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["a", "b"], "ner_tags": ["O"]}\n': (
            2,
            "2 tokens but 1 tags",
        ),
        '{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["a"]\n': (2, "broken JSON"),
        '{"tokens": ["a"], "ner_tags": ["O"]}\n{"words": ["a"], "labels": ["O"]}\n': (2, "no 'ner_tags'"),
        '{"tokens": ["a"], "ner_tags": ["O"]}\n["a", "O"]\n': (2, "JSON array"),
        '{"tokens": ["a"], "ner_tags": ["O"], "tokens": ["b"]}\n': (1, "appears twice"),
        '{"id": 1, "tokens": ["a"], "ner_tags": ["O"]}\n{"id": 1, "tokens": ["b"], "ner_tags": ["O"]}\n': (
            2,
            "duplicate id '1' (first on line 1)",
        ),
        '{"tokens": [" "], "ner_tags": ["O"]}\n': (1, "not a non-empty string"),
        '{"tokens": [], "ner_tags": []}\n': (1, "without tokens"),
    }
    for number, (text, (line, problem)) in enumerate(cases.items()):
        path = write(tmp_path, f"case{number}.jsonl", text)
        with pytest.raises(DataError, match=re.escape(problem)) as error:
            read_tagged_records(path)
        assert error.value.line == line and error.value.fix, text


def test_csv_errors_name_the_line(tmp_path: Path) -> None:
    header_only_columns = write(tmp_path, "a.csv", "sentence,labels\nx,1\n")
    with pytest.raises(DataError, match="no 'label' column") as error:
        read_labeled_records(header_only_columns, file_format="csv")
    assert error.value.line == 1
    extra = write(tmp_path, "b.csv", 'sentence,label\n"a, quoted text",1\nb, unquoted, 0\n')
    with pytest.raises(DataError, match="3 fields, but the header on line 1 names 2") as error:
        read_labeled_records(extra, file_format="csv")
    assert error.value.line == 3
    broken_quote = write(tmp_path, "c.csv", 'sentence,label\nok,1\n"bad" text,0\n')
    with pytest.raises(DataError, match="broken CSV") as error:
        read_labeled_records(broken_quote, file_format="csv")
    assert error.value.line == 3


# --- classification, RE, similarity, QA --------------------------------------------------------------


def test_classification_csv_quoted_line_breaks_keep_the_record_line(tmp_path: Path) -> None:
    path = write(tmp_path, "train.csv", 'idx,text,label\n0,"first line\nsecond, line",1\n\n1,plain,0\n')
    first, second = read_file("classification", path, options=AUTO)
    assert (first.id, first.text, first.label, first.source) == (
        "0",
        "first line\nsecond, line",
        "1",
        f"{path}:2",
    )
    assert (second.id, second.source) == ("1", f"{path}:5")


def test_glue_json_lines_for_every_sequence_type(tmp_path: Path) -> None:
    labeled = write(tmp_path, "re.json", jsonl([{"sentence": "@GENE$ binds @CHEMICAL$.", "label": 1}]))
    (example,) = read_file("re", labeled, options=AUTO)
    assert (example.text, example.label, example.id) == ("@GENE$ binds @CHEMICAL$.", "1", "re:1")
    pairs = write(tmp_path, "sts.jsonl", jsonl([{"sentence1": "A.", "sentence2": "B.", "label": 3.5}]))
    (pair,) = read_file("similarity", pairs, options=AUTO)
    assert (pair.text_a, pair.text_b, pair.score) == ("A.", "B.", 3.5)
    far = write(tmp_path, "far.jsonl", jsonl([{"sentence1": "A.", "sentence2": "B.", "label": 4.5}]))
    with pytest.raises(DataError, match="outside 0-4") as error:
        read_scored_records(far)
    assert error.value.line == 1
    questions = write(
        tmp_path, "qa.json", jsonl([{"id": "q1", "question": "Q?", "context": "C.", "label": "yes"}])
    )
    (question,) = read_file("qa", questions, options=AUTO)  # .json, but JSON Lines records: not PubMedQA
    assert (question.id, question.question, question.context, question.label) == ("q1", "Q?", "C.", "yes")
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        read_question_records(
            write(tmp_path, "q.jsonl", jsonl([{"question": "Q?", "context": "C.", "label": "maybe"}])),
            ("yes", "no"),
        )


def test_pubmedqa_json_is_still_pubmedqa(tmp_path: Path) -> None:
    entry = {"QUESTION": "Q?", "CONTEXTS": ["a", "b"], "final_decision": "no"}
    path = write(tmp_path, "train_set.json", json.dumps({"123": entry}, indent=4))
    (question,) = read_file("qa", path, options=AUTO)
    assert (question.id, question.context, question.label) == ("123", "a b", "no")


def test_an_explicit_format_wins_and_a_wrong_one_is_refused(tmp_path: Path) -> None:
    # word<TAB>tag lines read as CoNLL (tabs are whitespace columns): the same sentences
    path = write(tmp_path, "train.tsv", "Aspirin\tB\ncauses\tO\n")
    assert read_file("ner", path, options=ReadOptions("conll"))[0].words == ("Aspirin", "causes")
    with pytest.raises(ConfigError, match="classification files cannot be read as conll"):
        read_file("classification", path, options=ReadOptions("conll"))
    with pytest.raises(ConfigError, match="multilabel files cannot be read as jsonl"):
        read_file("multilabel", path, options=ReadOptions("jsonl"))
    with pytest.raises(ConfigError, match="file_format and tag_names are for own files"):
        resolve_config(TrainConfig(dataset="BIOSSES", file_format="csv"))


def test_an_unseen_dev_tag_names_the_record_line(tmp_path: Path) -> None:
    train = write(tmp_path, "train.jsonl", jsonl([{"tokens": ["a", "b"], "ner_tags": ["B", "O"]}] * 2))
    dev = write(tmp_path, "dev.jsonl", '\n{"tokens": ["a", "b", "c"], "ner_tags": ["O", "O", "I"]}\n')
    with pytest.raises(DataError, match="label 'I' never appears in the training file") as error:
        load_own_files("ner", train, dev)
    assert error.value.line == 2  # the record's line, not line + the tag's position


def test_data_check_reads_users_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.jsonl", jsonl([{"tokens": ["IL-2", "gene"], "ner_tags": ["B", "I"]}]))
    report = check_file("ner", path)
    assert report.passed and report.examples == 1 and report.units == 1


def test_json_lines_trains_exactly_as_the_same_tsv(
    shared_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    """NCBI-disease slices written as JSON Lines with integer tags (as `datasets` exports them)."""
    config = slice_config(shared_data, tmp_path / "tsv", "NCBI-disease", tiny_bert, 16, save_model=False)
    tag_names = ("B", "I", "O")
    converted: dict[str, Path] = {}
    for split in ("train", "dev", "test"):
        source = getattr(config, f"{split}_file")
        rows = [
            {"tokens": list(s.words), "ner_tags": [tag_names.index(t) for t in s.tags]}
            for s in read_tagged_tsv(source)
        ]
        folder = tmp_path / "json" / "data"  # the folder names the dataset, as the TSV slice's does
        folder.mkdir(parents=True, exist_ok=True)
        converted[split] = write(folder, f"{split}.json", jsonl(rows))
    as_json = config.model_copy(
        update={
            "train_file": converted["train"],
            "dev_file": converted["dev"],
            "test_file": converted["test"],
            "tag_names": list(tag_names),
        }
    )
    tsv_seed = run_training(config, tmp_path / "run-tsv").seeds[0]
    json_seed = run_training(as_json, tmp_path / "run-json").seeds[0]
    for key in ("history", "dev", "test", "status"):
        assert getattr(json_seed, key) == getattr(tsv_seed, key), key


def test_tag_names_spellings() -> None:
    assert TrainConfig(tag_names="O, B-Disease,I-Disease").tag_names == ["O", "B-Disease", "I-Disease"]
    with pytest.raises(ValueError, match="distinct"):
        TrainConfig(tag_names=["O", "O"])
    assert TrainConfig().file_format == "auto"


def test_scored_csv_reads_scores(tmp_path: Path) -> None:
    path = write(tmp_path, "pairs.csv", "sentence1,sentence2,score\nA cell.,A cell!,3.2\n")
    (pair,) = read_file("similarity", path, options=AUTO)
    assert (pair.score, pair.source, pair.id) == (3.2, f"{path}:2", "pairs:2")
