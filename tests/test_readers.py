"""Readers: content, ids and source lines on small hand-made files, one bad file per error, real counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from biotune.data.examples import TaggedSentence
from biotune.data.loading import count_units, load_dataset
from biotune.data.readers import (
    read_bioasq,
    read_biosses,
    read_hoc,
    read_labeled_tsv,
    read_pubmedqa,
    read_tagged_tsv,
)
from biotune.data.registry import all_specs, get_spec
from biotune.errors import ConfigError, DataError
from biotune.tasks import read_file


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- content ------------------------------------------------------------------------------------


def test_tagged_tsv_without_docstart(tmp_path: Path) -> None:
    path = write(tmp_path, "dev.tsv", "Aspirin\tB\ncauses\tO\nasthma\tB\n\n\nNo\tO\nentity\tO")
    first, second = read_tagged_tsv(path, {"B", "I", "O"})
    assert first.words == ("Aspirin", "causes", "asthma") and first.tags == ("B", "O", "B")
    assert (first.id, first.source, first.document) == ("dev:1", f"{path}:1", None)
    assert (second.id, second.source, second.words) == ("dev:6", f"{path}:6", ("No", "entity"))


def test_tagged_tsv_docstart_sets_document(tmp_path: Path) -> None:
    text = "-DOCSTART- 111\n\nIL-2\tB\ngene\tI\n\nA\tO\n-DOCSTART- 222\n\nB\tO\n"
    sentences = read_tagged_tsv(write(tmp_path, "train.tsv", text))
    assert [(s.document, s.id, s.words) for s in sentences] == [
        ("111", "111:3", ("IL-2", "gene")),
        ("111", "111:6", ("A",)),
        ("222", "222:9", ("B",)),
    ]


def test_tagged_tsv_ebm_pico_docstart_in_parentheses(tmp_path: Path) -> None:
    text = "-DOCSTART- (10037531)\n\nXylitol\tI-INT\nfor\tO\nchildren\tI-PAR\n.\tO\n\n"
    (sentence,) = read_tagged_tsv(write(tmp_path, "dev.tsv", text), get_spec("pico").labels)
    assert sentence.document == "10037531" and sentence.id == "10037531:3"
    assert sentence.tags == ("I-INT", "O", "I-PAR", "O")


def test_labeled_tsv_without_and_with_header(tmp_path: Path) -> None:
    chemprot = write(
        tmp_path,
        "chemprot.tsv",
        "1.T1.T2\t@CHEMICAL$ binds @GENE$.\tCPR:3\n1.T1.T3\t@CHEMICAL$ and @GENE$.\tfalse\n",
    )
    rows = read_labeled_tsv(chemprot, get_spec("chemprot").labels)
    assert [(r.id, r.label, r.source) for r in rows] == [
        ("1.T1.T2", "CPR:3", f"{chemprot}:1"),
        ("1.T1.T3", "false", f"{chemprot}:2"),
    ]
    assert rows[0].text == "@CHEMICAL$ binds @GENE$."
    gad = write(tmp_path, "gad.tsv", "index\tsentence\tlabel\n0\t@GENE$ in @DISEASE$.\t1\n1\tNo link.\t0\n")
    rows = read_labeled_tsv(gad, ("0", "1"))
    assert [(r.id, r.label, r.source) for r in rows] == [("0", "1", f"{gad}:2"), ("1", "0", f"{gad}:3")]


def test_biosses_reads_scores_after_header(tmp_path: Path) -> None:
    path = write(tmp_path, "b.tsv", "pair_id\tsent1\tsent2\tscore\n88\tA cell.\tA cell!\t3.2\n7\tX.\tY.\t0\n")
    pairs = read_biosses(path)
    assert [(p.id, p.text_a, p.text_b, p.score, p.source) for p in pairs] == [
        ("88", "A cell.", "A cell!", 3.2, f"{path}:2"),
        ("7", "X.", "Y.", 0.0, f"{path}:3"),
    ]


def test_hoc_groups_sentences_and_ors_labels(tmp_path: Path) -> None:
    none, five, zero = (
        ",".join(f"{i}_0" for i in range(10)),
        ",".join(f"{i}_{int(i == 5)}" for i in range(10)),
        ",".join(f"{i}_{int(i == 0)}" for i in range(10)),
    )
    text = (
        f"labels\tsentence\tindex\n{none}\tSecond.\t42_s1\n{five}\tFirst.\t42_s0\n"
        f"{none}\tOther.\t7_s0\n{zero}\tThird.\t42_s2\n"
    )
    path = write(tmp_path, "hoc.tsv", text)
    abstract, other = read_hoc(path, 10)
    assert (abstract.id, abstract.source) == ("42", f"{path}:2")
    assert abstract.sentences == ("First.", "Second.", "Third.")
    assert abstract.sentence_ids == ("42_s0", "42_s1", "42_s2")
    assert abstract.labels == frozenset({0, 5}) and abstract.text == "First. Second. Third."
    assert (other.id, other.labels, other.source) == ("7", frozenset(), f"{path}:4")


PUBMEDQA = """{
    "111": {
        "QUESTION": "Does it work?",
        "CONTEXTS": ["Part one.", "Part two."],
        "final_decision": "yes"
    },
    "222": {"QUESTION": "Maybe?", "CONTEXTS": ["Only."], "final_decision": "maybe"}
}
"""


def test_pubmedqa_joins_contexts_and_finds_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "dev_set.json", PUBMEDQA)
    first, second = read_pubmedqa(path, ("yes", "no", "maybe"))
    assert (first.id, first.question, first.context, first.label) == (
        "111",
        "Does it work?",
        "Part one. Part two.",
        "yes",
    )
    assert (first.source, second.source, second.label) == (f"{path}:2", f"{path}:7", "maybe")


def test_bioasq_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "dev.tsv", "q1\tIs it?\tSnippet one. Snippet two.\tyes\nq2\tOr not?\tNo.\tno\n")
    rows = read_bioasq(path, ("yes", "no"))
    assert [(r.id, r.question, r.context, r.label, r.source) for r in rows] == [
        ("q1", "Is it?", "Snippet one. Snippet two.", "yes", f"{path}:1"),
        ("q2", "Or not?", "No.", "no", f"{path}:2"),
    ]


def test_read_file_dispatches_by_task_type_and_qa_content(tmp_path: Path) -> None:
    json_without_suffix = write(tmp_path, "pqa.txt", PUBMEDQA)
    assert [q.id for q in read_file("qa", json_without_suffix)] == ["111", "222"]
    tsv = write(tmp_path, "b.tsv", "q1\tIs it?\tYes it is.\tyes\n")
    assert read_file("qa", tsv)[0].context == "Yes it is."
    classification = write(tmp_path, "c.tsv", "a\tgood text\tpositive\n")
    assert read_file("classification", classification)[0].label == "positive"
    with pytest.raises(ConfigError, match="unknown task type"):
        read_file("translation", tsv)


def sentences_with(*tag_rows: tuple[str, ...]) -> list[TaggedSentence]:
    return [
        TaggedSentence(id=str(i), words=("w",) * len(t), tags=t, source="x:1") for i, t in enumerate(tag_rows)
    ]


def test_count_units_counted_by_hand() -> None:
    # I at a sentence start or after O opens a mention, as seqeval reads it: 4 + 2 + 0 + 1
    untyped = sentences_with(("I", "I", "O", "B", "I", "B", "O", "I"), ("B", "B", "O"), ("O",), ("I",))
    assert count_units(get_spec("ncbi"), untyped) == 7
    # typed tags from users' files: an I of another type opens a new mention
    assert count_units("ner", sentences_with(("B-X", "I-Y", "O", "I-X", "I-X"))) == 3
    pico = [TaggedSentence(id="p", words=("a",) * 4, tags=("I-PAR", "O", "I-INT", "I-INT"), source="x:1")]
    assert count_units("pico", pico) == 3


# --- bad input: one small bad file each, the error names file and line ---------------------------

HOC_ROW = ",".join(f"{i}_0" for i in range(10))
BAD_FILES: list[tuple[str, Callable[[Path], object], str, int, str]] = [
    ("tagged_columns", lambda p: read_tagged_tsv(p), "A\tO\nB O\n", 2, "2 tab-separated columns"),
    ("tagged_three", lambda p: read_tagged_tsv(p), "A\tO\nB\tO\textra\n", 2, "found 3"),
    ("tagged_empty_token", lambda p: read_tagged_tsv(p), "A\tO\n\tB\n", 2, "empty token"),
    ("tagged_empty_tag", lambda p: read_tagged_tsv(p), "A\tO\n\nB\t\n", 3, "empty tag"),
    (
        "tagged_unknown",
        lambda p: read_tagged_tsv(p, ("B", "I", "O")),
        "A\tO\nB\tB-Chemical\n",
        2,
        "unknown tag",
    ),
    (
        "labeled_columns",
        lambda p: read_labeled_tsv(p),
        "1\tText.\tfalse\n2\tText only\n",
        2,
        "3 tab-separated",
    ),
    (
        "labeled_unknown",
        lambda p: read_labeled_tsv(p, ("0", "1")),
        "0\tA.\t1\n1\tB.\t2\n",
        2,
        "unknown label '2'",
    ),
    ("labeled_duplicate", lambda p: read_labeled_tsv(p), "x\tA.\t1\nx\tB.\t0\n", 2, "duplicate id 'x'"),
    ("labeled_empty_text", lambda p: read_labeled_tsv(p), "x\t \t1\n", 1, "empty text"),
    (
        "biosses_text_score",
        lambda p: read_biosses(p),
        "pair_id\tsent1\tsent2\tscore\n1\tA\tB\thigh\n",
        2,
        "not a number",
    ),
    (
        "biosses_range",
        lambda p: read_biosses(p),
        "pair_id\tsent1\tsent2\tscore\n1\tA\tB\t2\n2\tA\tB\t4.5\n",
        3,
        "outside 0-4",
    ),
    ("biosses_negative", lambda p: read_biosses(p), "1\tA\tB\t-0.5\n", 1, "outside 0-4"),
    (
        "biosses_columns",
        lambda p: read_biosses(p),
        "pair_id\tsent1\tsent2\tscore\n1\tA\t3\n",
        2,
        "4 tab-separated",
    ),
    (
        "hoc_label_value",
        lambda p: read_hoc(p),
        f"labels\tsentence\tindex\n{HOC_ROW}\tA.\t1_s0\n{HOC_ROW.replace('3_0', '3_2')}\tB.\t1_s1\n",
        3,
        "bad label field",
    ),
    ("hoc_label_order", lambda p: read_hoc(p), "1_0,0_1\tA.\t1_s0\n", 1, "bad label field"),
    ("hoc_label_count", lambda p: read_hoc(p, 10), "0_0,1_1\tA.\t1_s0\n", 1, "expected 10"),
    ("hoc_index", lambda p: read_hoc(p), f"{HOC_ROW}\tA.\t12345\n", 1, "bad index"),
    (
        "hoc_duplicate",
        lambda p: read_hoc(p),
        f"{HOC_ROW}\tA.\t1_s0\n{HOC_ROW}\tB.\t1_s0\n",
        2,
        "appears twice",
    ),
    (
        "pubmedqa_broken",
        lambda p: read_pubmedqa(p),
        '{\n  "1": {"QUESTION": "Q?",\n  "CONTEXTS": []\n',
        4,
        "broken JSON",
    ),
    (
        "pubmedqa_no_decision",
        lambda p: read_pubmedqa(p),
        '{\n"1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "no"},\n'
        '"2": {"QUESTION": "Q?", "CONTEXTS": ["c"]}\n}\n',
        3,
        "no final_decision",
    ),
    (
        "pubmedqa_label",
        lambda p: read_pubmedqa(p, ("yes", "no")),
        '{"1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}',
        1,
        "unknown label",
    ),
    (
        "pubmedqa_contexts",
        lambda p: read_pubmedqa(p),
        '{"1": {"QUESTION": "Q?", "CONTEXTS": "c", "final_decision": "no"}}',
        1,
        "CONTEXTS",
    ),
    ("pubmedqa_list", lambda p: read_pubmedqa(p), "[1, 2]", 1, "expected an object"),
    (
        "pubmedqa_duplicate",
        lambda p: read_pubmedqa(p),
        '{\n"1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "no"},\n'
        '"1": {"QUESTION": "R?", "CONTEXTS": ["c"], "final_decision": "no"}\n}',
        3,
        "appears twice",
    ),
    (
        "bioasq_label",
        lambda p: read_bioasq(p, ("yes", "no")),
        "q1\tQ?\tC.\tyes\nq2\tQ?\tC.\tmaybe\n",
        2,
        "unknown label",
    ),
    ("bioasq_columns", lambda p: read_bioasq(p), "q1\tQ?\tyes\n", 1, "4 tab-separated"),
]


@pytest.mark.parametrize("name, reader, text, line, problem", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_file_raises_one_data_error_with_file_and_line(
    tmp_path: Path, name: str, reader: Callable[[Path], object], text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, f"{name}.tsv", text)
    with pytest.raises(DataError) as caught:
        reader(path)
    error = caught.value
    assert (error.path, error.line) == (str(path), line)
    assert problem in error.problem
    assert str(error).startswith(f"{path}:{line}: ") and error.fix


READERS: list[Callable[[Path], object]] = [
    read_tagged_tsv,
    read_labeled_tsv,
    read_biosses,
    read_hoc,
    read_pubmedqa,
    read_bioasq,
]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_empty_or_header_only_file_is_an_error(tmp_path: Path, reader: Callable[[Path], object]) -> None:
    for text in ("", "\n\n"):
        path = write(tmp_path, "empty.tsv", text)
        with pytest.raises(DataError, match="empty|no "):
            reader(path)
    header_only = {
        read_labeled_tsv: "index\tsentence\tlabel\n",
        read_biosses: "pair_id\tsent1\tsent2\tscore\n",
        read_hoc: "labels\tsentence\tindex\n",
        read_pubmedqa: "{}",
        read_tagged_tsv: "-DOCSTART- 1\n\n",
    }
    if reader in header_only:
        with pytest.raises(DataError, match="no "):
            reader(write(tmp_path, "header.tsv", header_only[reader]))


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_undecodable_bytes_and_missing_file(tmp_path: Path, reader: Callable[[Path], object]) -> None:
    path = tmp_path / "latin1.tsv"
    path.write_bytes(b"a\tO\nb\tO\n\ncaf\xe9\tO\n")
    with pytest.raises(DataError, match="not UTF-8") as caught:
        reader(path)
    assert caught.value.line == 4
    with pytest.raises(DataError, match="file not found"):
        reader(tmp_path / "absent.tsv")


def test_crlf_and_byte_order_mark_are_read(tmp_path: Path) -> None:
    path = tmp_path / "windows.tsv"
    path.write_bytes("\ufeffx\tA.\t1\r\ny\tB.\t0\r\n".encode())
    assert [(r.id, r.label) for r in read_labeled_tsv(path, ("0", "1"))] == [("x", "1"), ("y", "0")]


# --- real files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_real_files_match_the_blurb_table(shared_data: Path, spec) -> None:
    loaded = load_dataset(spec, shared_data, allow_missing=True)
    for split in spec.splits:
        if split in loaded.missing:
            assert (spec.name, split) == ("ebmnlp", "train")  # the one file BLURB.md says may be absent
            continue
        examples = loaded.split(split)
        units = count_units(spec, examples)
        if split in spec.known_differences:
            assert units != spec.expected_units[split]
            assert {("BC5CDR-disease", 4246), ("ebmnlp", 87308)} >= {(spec.name, units)}
        else:
            assert units == spec.expected_units[split], (spec.name, split)
        ids = [example.id for example in examples]
        assert len(set(ids)) == len(ids)


def test_real_files_content(shared_data: Path) -> None:
    jnlpba = load_dataset("jnlpba", shared_data, splits=("dev",)).dev
    assert jnlpba[0].document == "91075236" and jnlpba[0].words[0] == "Disruption"
    assert jnlpba[0].source.endswith("JNLPBA/dev.tsv:3")
    hoc = load_dataset("hoc", shared_data, splits=("test",)).test
    assert hoc[0].id == "12553062" and hoc[0].sentence_ids[1] == "12553062_s1"
    pubmedqa = load_dataset("pubmedqa", shared_data, splits=("test",)).test
    assert {q.label for q in pubmedqa} == {"yes", "no", "maybe"} and pubmedqa[0].id == "12377809"
    biosses = load_dataset("biosses", shared_data, splits=("train",)).train
    assert (biosses[2].id, biosses[2].score) == ("35", 2.0)
