"""`biotune predict` and `biotune.load`: raw text to exact spans, every task type's rows, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from scipy.special import expit, softmax
from tokenizers.pre_tokenizers import BertPreTokenizer
from typer.testing import CliRunner

from _run_files import real_results, seed_result, write_results
from _slices import write_slice
from biotune.api import load, resolve_model_folder, select_seed
from biotune.cli import app
from biotune.config import TrainConfig
from biotune.data.registry import HOC_HALLMARKS
from biotune.errors import BiotuneError, ConfigError, DataError
from biotune.models import build_model, extend_vocabulary, head_module, load_tokenizer, save_model
from biotune.predict import InputItem, Predictor, entity_spans, mask_entities, read_inputs
from biotune.run_folder import ModelCard
from biotune.runs import run_training
from biotune.tasks import add_placeholder_tokens, get_task, placeholder_pieces
from biotune.textsplit import Word, split_sentences, split_words

NER_LABELS = ["B", "I", "O"]
ODD_TEXT = "Aspirin  reduces\tpain. Naïve mice (n=5) improved…"
ODD_SENTENCES = ["Aspirin  reduces\tpain.", "Naïve mice (n=5) improved…"]


# ---------------------------------------------------------------------------------------------- textsplit

# Letters, digits, punctuation, symbols, whitespace of several kinds, combining marks, CJK, an emoji.
TEXT_ALPHABET = st.sampled_from(
    list("aZé9 \t\n\u00a0\u2003.,;-()/'\"$+±°µ…—«»\u0301中😀_") + ["\u200b", "\x1c"]
)
texts = st.lists(TEXT_ALPHABET, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_words_are_exact_slices_and_cover_every_non_space_character(text: str) -> None:
    words = split_words(text)
    covered = [False] * len(text)
    previous_end = 0
    for word in words:
        assert word.text == text[word.start : word.end] and word.start < word.end
        assert word.start >= previous_end, "words are in order and never overlap"
        assert not any(char.isspace() for char in word.text)
        previous_end = word.end
        for index in range(word.start, word.end):
            covered[index] = True
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_words_match_the_bert_pre_tokenizer(text: str) -> None:
    # The one documented difference: U+001C..U+001F are whitespace for Python, word characters for Rust.
    text = text.replace("\x1c", " ")
    expected = [(word, span) for word, span in BertPreTokenizer().pre_tokenize_str(text)]
    assert [(w.text, (w.start, w.end)) for w in split_words(text)] == expected


def test_punctuation_is_split_off_like_the_blurb_files() -> None:
    words = [w.text for w in split_words("GSK-3beta (APC) 5±2 mg/kg,µg")]
    assert words == ["GSK", "-", "3beta", "(", "APC", ")", "5±2", "mg", "/", "kg", ",", "µg"]


def test_sentences_end_at_a_full_stop_before_a_capital_and_at_line_breaks() -> None:
    text = "Aspirin works. It helps e.g. mice. 5 rats died\nNext line? yes! Done"
    words = split_words(text)
    sentences = [text[words[a].start : words[b - 1].end] for a, b in split_sentences(text, words)]
    assert sentences == ["Aspirin works.", "It helps e.g. mice. 5 rats died", "Next line? yes!", "Done"]
    assert split_sentences("", []) == []


# ---------------------------------------------------------------------------------------------- spans


def _words(*texts: str) -> list[Word]:
    words, start = [], 0
    for text in texts:
        words.append(Word(text, start, start + len(text)))
        start += len(text) + 1
    return words


def test_ner_spans_follow_seqeval_an_i_after_o_opens_an_entity() -> None:
    words = _words("a", "b", "c", "d", "e", "f")
    text = "a b c d e f"
    spans = entity_spans(
        text, words, ["I", "I", "O", "B", "I", "B"], [0.9, 0.7, 0.5, 0.6, 0.8, 1.0], "DISEASE"
    )
    assert [(s["text"], s["start"], s["end"], s["label"]) for s in spans] == [
        ("a b", 0, 3, "DISEASE"),
        ("d e", 6, 9, "DISEASE"),
        ("f", 10, 11, "DISEASE"),
    ]
    assert [s["score"] for s in spans] == pytest.approx([0.8, 0.7, 1.0])


def test_pico_spans_are_maximal_runs_of_one_label() -> None:
    words = _words("p1", "p2", "i1", "o", "x1", "x2")
    text = "p1 p2 i1 o x1 x2"
    tags = ["I-PAR", "I-PAR", "I-INT", "O", "I-OUT", "I-OUT"]
    spans = entity_spans(text, words, tags, [1.0] * 6)
    assert [(s["text"], s["label"]) for s in spans] == [("p1 p2", "PAR"), ("i1", "INT"), ("x1 x2", "OUT")]


# ------------------------------------------------------------------------------------ a trained NER model


@pytest.fixture(scope="module")
def ner_run(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ner")
    task_type, files = write_slice(shared_data, "NCBI-disease", folder / "data", 16)
    config = TrainConfig(
        train_file=files["train"],
        dev_file=files["dev"],
        test_file=files["test"],
        task_type=task_type,
        model=str(tiny_bert),
        seeds=[0],
        epochs=1,
        batch_size=8,
        max_length=24,  # small, so that ordinary sentences need windows
        learning_rate=1e-4,
    )
    run_training(config, folder / "run")
    return folder / "run"


def _forced(model_dir: Path, target: Path, bias: list[float], card: dict[str, Any] | None = None) -> Path:
    """A copy of a token model whose head ignores the encoder: every word gets softmax(bias)."""
    shutil.copytree(model_dir, target)
    weights = load_file(str(target / "model.safetensors"))
    weights["classifier.weight"] = torch.zeros_like(weights["classifier.weight"])
    weights["classifier.bias"] = torch.tensor(bias, dtype=weights["classifier.bias"].dtype)
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    if card:
        path = target / "biotune_model.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **card}))
    return target


LONG_TEXT = " ".join(
    ["acetaminophen-induced", "hepatotoxicity", "in", "Wistar", "rats"] * 40
)  # no sentence end


def _check_well_formed(text: str, row: dict[str, Any]) -> None:
    assert row["text"] == text
    words = split_words(text)
    starts, ends = {w.start for w in words}, {w.end for w in words}
    previous_end = 0
    for entity in row["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert entity["start"] in starts and entity["end"] in ends and entity["start"] >= previous_end
        assert 0.0 < entity["score"] <= 1.0 and entity["label"] == "ENTITY"
        previous_end = entity["end"]


def test_trained_model_gives_well_formed_spans_on_raw_text(ner_run: Path) -> None:
    predictor = load(ner_run, seed=0)  # a 1-epoch tiny model may well "fail"; its model is still saved
    inputs = [ODD_TEXT, "Mutations in BRCA1 ( breast cancer 1 ) cause ‘hereditary’ cancer.", LONG_TEXT]
    rows = predictor.predict(inputs)
    assert len(rows) == 3
    for text, row in zip(inputs, rows, strict=True):
        _check_well_formed(text, row)
    probabilities = predictor.probabilities([LONG_TEXT])[0]
    assert probabilities.shape == (len(split_words(LONG_TEXT)), 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_all_inside_tags_give_one_entity_per_sentence_with_exact_offsets(
    ner_run: Path, tmp_path: Path
) -> None:
    predictor = Predictor.from_folder(_forced(ner_run / "seed-0" / "model", tmp_path / "i", [0.0, 3.0, 0.0]))
    odd, long = predictor.predict([ODD_TEXT, LONG_TEXT])
    assert [e["text"] for e in odd["entities"]] == ODD_SENTENCES
    assert [(e["start"], e["end"]) for e in odd["entities"]] == [(0, 22), (23, len(ODD_TEXT))]
    # one sentence far longer than max_length 24: windowed, still one entity over all of it
    assert [(e["start"], e["end"], e["text"]) for e in long["entities"]] == [(0, len(LONG_TEXT), LONG_TEXT)]
    expected = math.exp(3) / (math.exp(3) + 2)
    assert all(e["score"] == pytest.approx(expected) for e in odd["entities"] + long["entities"])


def test_all_begin_tags_give_one_entity_per_word(ner_run: Path, tmp_path: Path) -> None:
    card = {"dataset": "NCBI-disease", "config": {"dataset": "NCBI-disease"}}
    predictor = Predictor.from_folder(
        _forced(ner_run / "seed-0" / "model", tmp_path / "b", [3.0, 0.0, 0.0], card)
    )
    for text in (ODD_TEXT, LONG_TEXT):
        (row,) = predictor.predict([text])
        words = split_words(text)
        assert [(e["start"], e["end"], e["text"]) for e in row["entities"]] == [
            (w.start, w.end, w.text) for w in words
        ]
        assert {e["label"] for e in row["entities"]} == {"DISEASE"}  # the dataset's entity type for B/I tags


def test_cli_predicts_a_text_file_and_jsonl_with_ids(ner_run: Path, tmp_path: Path) -> None:
    lines = tmp_path / "texts.txt"
    lines.write_text("BRCA1 causes cancer.\n\n  \nAspirin  helps.\r\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["predict", str(ner_run / "seed-0"), "--input", str(lines)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["BRCA1 causes cancer.", "Aspirin  helps."]

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"id": "a1", "text": "Naïve mice."}\n{"sentence": "Rats (n=5)."}\n', encoding="utf-8")
    out = tmp_path / "out" / "pred.jsonl"
    result = CliRunner().invoke(
        app, ["predict", str(ner_run), "-i", str(jsonl), "-o", str(out), "--seed", "0"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["id"] == "a1" and rows[0]["text"] == "Naïve mice." and "id" not in rows[1]
    assert rows == load(ner_run, seed=0).predict(
        [{"id": "a1", "text": "Naïve mice."}, {"sentence": "Rats (n=5)."}]
    )


def test_progress_is_reported_for_every_input(ner_run: Path) -> None:
    predictor = load(ner_run, seed=0, batch_size=7)
    done: list[int] = []
    rows = list(predictor.predict_iter([f"Case {i} died." for i in range(30)], on_progress=done.append))
    assert len(rows) == 30 and sum(done) == 30 and max(done) == 7


# ----------------------------------------------------------------------------------------- sequence tasks


def _built(
    tiny_bert: Path,
    folder: Path,
    task_type: str,
    labels: list[str],
    bias: list[float] | None,
    pooling: str = "cls",
    negative: str | None = None,
    placeholders: tuple[str, ...] = (),
) -> Path:
    """A saved model folder without training; with `bias`, a head that ignores the encoder."""
    task = get_task(task_type, labels, negative)
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), task.head, labels, pooling=pooling)  # type: ignore[arg-type]
    tokenizer = load_tokenizer(str(tiny_bert))
    pieces = placeholder_pieces(tokenizer, placeholders)
    add_placeholder_tokens(tokenizer, placeholders)
    extend_vocabulary(model, tokenizer, pieces)
    if bias is not None:
        head = head_module(model)
        assert head is not None
        with torch.no_grad():
            head.weight.zero_()
            head.bias.copy_(torch.tensor(bias))
    card = {
        "head": task.head,
        "task_type": task_type,
        "labels": labels,
        "negative_label": negative,
        "pooling": pooling,
        "max_length": 64,
        "dataset": "custom",
        "seed": 0,
        "techniques": [],
        "config": {"dataset": None},
        "versions": {},
    }
    save_model(model, tokenizer, folder, ModelCard.model_validate(card))
    return folder


def test_multilabel_rows_and_threshold(tiny_bert: Path, tmp_path: Path) -> None:
    bias = [2.0, -2.0, 0.5, -0.5, 1.0, -1.0, 0.0, 3.0, -3.0, 0.9]
    folder = _built(tiny_bert, tmp_path / "hoc", "multilabel", list(HOC_HALLMARKS), bias)
    predictor = load(folder)
    (row,) = predictor.predict(["Tumour cells invaded the stroma."])
    assert row["probabilities"] == pytest.approx(dict(zip(HOC_HALLMARKS, expit(bias), strict=True)))
    assert row["labels"] == [h for h, b in zip(HOC_HALLMARKS, bias, strict=True) if b > 0]
    (strict,) = predictor.predict([{"text": "Tumour cells invaded the stroma."}], threshold=0.7)
    assert strict["labels"] == [h for h, b in zip(HOC_HALLMARKS, bias, strict=True) if expit(b) > 0.7]
    result = CliRunner().invoke(app, ["predict", str(folder), "--text", "Cells grew.", "--threshold", "0.9"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == [HOC_HALLMARKS[7]]  # sigmoid(3) = 0.95, sigmoid(2) = 0.88


def test_similarity_and_qa_rows(tiny_bert: Path, tmp_path: Path) -> None:
    similarity = load(_built(tiny_bert, tmp_path / "sts", "similarity", [], [2.5], pooling="mean"))
    rows = similarity.predict([{"id": 3, "sentence1": "Cells grow.", "sentence2": "Cells divide."}])
    assert rows == [{"id": 3, "score": pytest.approx(2.5)}]
    qa = load(_built(tiny_bert, tmp_path / "qa", "qa", ["yes", "no", "maybe"], [0.0, 1.0, 0.0]))
    (row,) = qa.predict([{"question": "Does it work?", "context": "It did not work."}])
    assert row["answer"] == "no"
    assert list(row["probabilities"].values()) == pytest.approx(softmax([0.0, 1.0, 0.0]))


@pytest.fixture(scope="module")
def relation_model(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("re") / "model"
    return _built(
        tiny_bert, folder, "re", ["0", "1"], None, negative="0", placeholders=("@GENE$", "@DISEASE$")
    )


def test_relation_raw_text_with_spans_is_masked_like_the_training_data(relation_model: Path) -> None:
    predictor = load(relation_model)
    assert predictor.placeholders == ["@DISEASE$", "@GENE$"]
    raw = {
        "text": "BRCA1 mutations cause breast cancer.",
        "entity1": {"start": 0, "end": 5, "type": "gene"},
        "entity2": {"start": 22, "end": 35, "type": "@DISEASE$"},
    }
    masked = "@GENE$ mutations cause @DISEASE$."
    from_spans, from_masked = predictor.predict([raw, masked])
    assert from_spans == from_masked
    assert set(from_spans) == {"label", "probabilities"} and from_spans["label"] in ("0", "1")
    assert sum(from_spans["probabilities"].values()) == pytest.approx(1.0)


def test_placeholder_choice_for_untyped_and_overlapping_entities() -> None:
    item = InputItem({}, "inputs[0]")
    ddi = ["@DRUG$", "@DRUG-DRUG$"]
    text = "Aspirin increases warfarin levels."
    untyped = mask_entities(text, {"start": 0, "end": 7}, {"start": 18, "end": 26}, ddi, item)
    assert untyped == "@DRUG$ increases @DRUG$ levels."
    assert (
        mask_entities(text, {"start": 0, "end": 7}, {"start": 0, "end": 3}, ddi, item)
        == "@DRUG-DRUG$ increases warfarin levels."
    )
    with pytest.raises(DataError, match="no type"):
        mask_entities(text, {"start": 0, "end": 7}, {"start": 18, "end": 26}, ["@CHEMICAL$", "@GENE$"], item)
    with pytest.raises(DataError, match="never saw"):
        mask_entities(
            text,
            {"start": 0, "end": 7, "type": "PROTEIN"},
            {"start": 18, "end": 26, "type": "GENE"},
            ["@CHEMICAL$", "@GENE$"],
            item,
        )
    with pytest.raises(DataError, match=r"inputs\[0\]: entity2 span \[18, 99\)"):
        mask_entities(text, {"start": 0, "end": 7}, {"start": 18, "end": 99}, ddi, item)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"txt": "a"}, r"inputs\[0\]: missing field 'text'"),
        ({"text": "   "}, "field 'text' is empty"),
        ("", "empty text"),
        ({"text": 5}, "field 'text' must be a string, got number"),
        ({"text": "a", "sentence": "b"}, "both 'text' and 'sentence'"),
        (["a"], "must be a text or an object"),
    ],
)
def test_bad_inputs_name_the_input(ner_run: Path, value: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(ner_run, seed=0).predict([value])


def test_bad_relation_and_pair_inputs(relation_model: Path, tiny_bert: Path, tmp_path: Path) -> None:
    relation = load(relation_model)
    with pytest.raises(DataError, match="no placeholder"):
        relation.predict(["BRCA1 causes cancer."])
    with pytest.raises(DataError, match=r"@CHEMICAL\$ were never seen"):
        relation.predict(["@CHEMICAL$ binds @GENE$."])
    with pytest.raises(DataError, match="both entity1 and entity2"):
        relation.predict(
            [{"text": "BRCA1 causes cancer.", "entity1": {"start": 0, "end": 5, "type": "GENE"}}]
        )
    pairs = load(_built(tiny_bert, tmp_path / "sts", "similarity", [], None))
    with pytest.raises(DataError, match="reads pairs"):
        pairs.predict(["one sentence"])
    with pytest.raises(DataError, match=r"inputs\[1\]: missing field 'sentence2'"):
        pairs.predict([{"sentence1": "a", "sentence2": "b"}, {"sentence1": "a"}])
    with pytest.raises(ConfigError, match="list of inputs"):
        pairs.predict("one sentence")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="threshold"):
        pairs.predict([{"sentence1": "a", "sentence2": "b"}], threshold=1.5)


def test_bad_files_give_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": "broken}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"in\.jsonl:3: not valid JSON"):
        read_inputs(path)
    path.write_text('{"text": "ok"}\n["a list"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"in\.jsonl:2: a JSONL line must be a JSON object, got a JSON array"):
        read_inputs(path)
    path.write_text("\n \n", encoding="utf-8")
    with pytest.raises(DataError, match="no inputs"):
        read_inputs(path)
    with pytest.raises(DataError, match="no such input file"):
        read_inputs(tmp_path / "missing.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("naïve".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_inputs(latin)


def test_file_errors_carry_line_numbers_through_predict(ner_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": ""}\n', encoding="utf-8")
    items = read_inputs(path)
    assert [item.line for item in items] == [1, 3]
    bom = tmp_path / "bom.jsonl"
    bom.write_text('{"text": "ok"}\n', encoding="utf-8-sig")
    assert [item.value for item in read_inputs(bom)] == [{"text": "ok"}]
    with pytest.raises(DataError, match=r"in\.jsonl:3: field 'text' is empty"):
        load(ner_run, seed=0).predict(items)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "exactly one of --text"),
        (["--text", "a", "--input", "x.txt"], "exactly one of --text"),
        (["--text", "a", "--threshold", "0.3"], "--threshold applies to multi-label models"),
        (["--text", "a", "--seed", "many"], "seed must be 'best' or a seed number"),
        (["--text", "a", "--seed", "4"], "no seed 4 in this run"),
        (["--text", ""], "--text: empty text"),
    ],
)
def test_cli_errors_are_clear(ner_run: Path, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["predict", str(ner_run), "--seed", "0", *arguments])
    assert isinstance(result.exception, BiotuneError), result.output
    assert message in str(result.exception)


# ---------------------------------------------------------------------------------------------- which model


def _fake_run(folder: Path, seeds: list[tuple[int, str, float, bool]]) -> Path:
    records = []
    for seed, status, dev, has_model in seeds:
        records.append(seed_result(seed, status, dev, dev, None if status == "ok" else "collapsed"))
        (folder / f"seed-{seed}").mkdir()
        if has_model:
            (folder / f"seed-{seed}" / "model").mkdir()
            (folder / f"seed-{seed}" / "model" / "biotune_model.json").write_text(
                "{}"
            )  # only its presence counts
    config = {**real_results().config, "save_model": True}
    return write_results(folder, real_results(seeds=records, config=config))


def test_best_seed_is_the_best_dev_score_among_successful_seeds_with_a_model(tmp_path: Path) -> None:
    run = _fake_run(
        tmp_path,
        [
            (0, "ok", 50.0, True),
            (1, "ok", 70.0, True),
            (2, "failed", 90.0, True),
            (3, "ok", 80.0, False),
            (4, "ok", 70.0, True),
        ],
    )
    assert select_seed(run) == 1  # 2 failed, 3 saved no model, 4 ties with 1 and was trained later
    assert select_seed(run, "2") == 2  # asked for by name: allowed, the user knows it failed
    assert resolve_model_folder(run) == run / "seed-1" / "model"
    assert resolve_model_folder(run / "seed-4") == run / "seed-4" / "model"
    with pytest.raises(ConfigError, match="seed 3 has no saved model"):
        select_seed(run, 3)
    with pytest.raises(ConfigError, match="no seed 9"):
        select_seed(run, 9)
    with pytest.raises(ConfigError, match="chooses among the seeds of a run"):
        resolve_model_folder(run / "seed-1" / "model", seed=1)
    with pytest.raises(ConfigError, match="not a run folder"):
        resolve_model_folder(tmp_path / "seed-3")
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_model_folder(tmp_path / "nowhere")


def test_best_fails_clearly_when_every_seed_failed(tmp_path: Path) -> None:
    run = _fake_run(tmp_path, [(0, "failed", 10.0, True), (1, "failed", 20.0, True)])
    with pytest.raises(ConfigError, match="seeds 0, 1 saved a model but failed; choose one with --seed N"):
        select_seed(run)


def test_load_is_exported_lazily_and_import_biotune_stays_cheap() -> None:
    import subprocess
    import sys

    import biotune
    import biotune.api

    assert biotune.load is biotune.api.load
    code = "import sys, biotune; assert 'torch' not in sys.modules and 'biotune.api' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
