"""An exported model in `transformers.pipeline`: entity labels that read well, and biotune's entities."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file, save_file
from transformers import pipeline

from _slices import slice_config
from biotune.api import load
from biotune.config import TrainConfig
from biotune.export import CARD_FILE, FOLDER_PLACEHOLDER, export_model
from biotune.runs import run_training
from biotune.textsplit import split_sentences, split_words

MAX_LENGTH = 128


def fits(text: str, tokenizer: Any) -> bool:
    """Every sentence of the text within the max length: the pipeline cuts longer ones, biotune windows."""
    words = split_words(text)
    return all(
        len(tokenizer([w.text for w in words[first:end]], is_split_into_words=True)["input_ids"])
        <= MAX_LENGTH
        for first, end in split_sentences(text, words)
    )


def hoc_abstracts(shared_data: Path, count: int) -> list[str]:
    """Whole HoC test abstracts as raw text: the sentences of one PMID joined, punctuation re-attached."""
    sentences: dict[str, list[str]] = {}
    with (shared_data / "HoC" / "test.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            sentences.setdefault(row["index"].split("_s")[0], []).append(row["sentence"])
    texts = []
    for parts in list(sentences.values())[:count]:
        text = " ".join(parts)
        text = re.sub(r" ([.,;:)\]])", r"\1", text)
        texts.append(re.sub(r"([(\[]) ", r"\1", text))
    return texts


def card_section_code(folder: Path, title: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run one python block of the card as written (biotune made unimportable); return its names."""
    readme = (folder / CARD_FILE).read_text(encoding="utf-8")
    match = re.search(rf"## {re.escape(title)}\n.*?```python\n(.*?)```", readme, re.S)
    assert match, f"the card has a {title!r} section with code"
    monkeypatch.setitem(sys.modules, "biotune", None)
    namespace: dict[str, Any] = {"__name__": "card_snippet"}
    code = match.group(1).replace(FOLDER_PLACEHOLDER, str(folder))
    exec(compile(code, "README.md", "exec"), namespace)
    monkeypatch.delitem(sys.modules, "biotune")
    return namespace


@pytest.fixture(scope="module")
def ner_export(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NCBI-disease (the registry dataset, so its entity type is known), a few sentences of training; the
    head is scaled up so the tiny model tags entities in varied places rather than none."""
    folder = tmp_path_factory.mktemp("ncbi")
    config = TrainConfig(
        dataset="NCBI-disease",
        data_dir=shared_data,
        model=str(tiny_bert),
        seeds=[0],
        epochs=1,
        limit_train=16,
        batch_size=8,
        max_length=MAX_LENGTH,
        learning_rate=1e-4,
    )
    run_training(config, folder / "run")
    exported = export_model(folder / "run", folder / "export", seed=0).folder
    weights = load_file(str(exported / "model.safetensors"))
    weights["classifier.weight"] = weights["classifier.weight"] * 40.0
    save_file(weights, str(exported / "model.safetensors"), metadata={"format": "pt"})
    return exported


def test_token_pipeline_reads_typed_entities_and_agrees_with_biotune_predict(
    ner_export: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = json.loads((ner_export / "config.json").read_text())
    assert config["id2label"] == {"0": "B-DISEASE", "1": "I-DISEASE", "2": "O"}
    ner = pipeline("token-classification", model=str(ner_export), aggregation_strategy="first")
    assert {e["entity_group"] for e in ner("Mutations in BRCA1 cause breast cancer in many families.")} <= {
        "DISEASE"
    }

    snippet = card_section_code(ner_export, "Use it with the transformers pipeline", monkeypatch)
    predictor = load(ner_export)
    found = 0
    abstracts = [text for text in hoc_abstracts(shared_data, 12) if fits(text, predictor.tokenizer)][:3]
    assert len(abstracts) >= 2
    for text in abstracts:
        (row,) = predictor.predict([text])
        ours = [(e["start"], e["end"], e["label"]) for e in row["entities"]]
        theirs = [(e["start"], e["end"], e["entity_group"]) for e in snippet["entities"](text)]
        assert theirs == ours
        for entity, mine in zip(snippet["entities"](text), row["entities"], strict=True):
            assert float(entity["score"]) == pytest.approx(mine["score"], abs=1e-4)
            assert text[entity["start"] : entity["end"]] == mine["text"]
        found += len(ours)
    assert found >= 5, "the scaled head tags entities, so the comparison covers spans"


def test_card_says_how_the_pipeline_differs_from_biotune_predict(ner_export: Path) -> None:
    card = (ner_export / CARD_FILE).read_text()
    assert 'pipeline("token-classification"' in card and 'aggregation_strategy="first"' in card
    assert "one sentence at a time" in card and "overlapping windows" in card
    assert "`text[start:end]` is the surface text" in card


def test_sequence_model_works_in_the_text_classification_pipeline(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_training(slice_config(shared_data, tmp_path, "GAD", tiny_bert, 16), tmp_path / "run")
    folder = export_model(tmp_path / "run", tmp_path / "export", seed=0).folder
    predictor = load(folder)
    texts = [
        "@GENE$ polymorphisms are associated with @DISEASE$ in Thai patients.",
        "No link was found between @DISEASE$ and the @GENE$ variant.",
    ]
    classify = pipeline("text-classification", model=str(folder), top_k=None)
    outputs = classify(texts, truncation=True)
    for output, row in zip(outputs, predictor.predict(texts), strict=True):
        scores = {entry["label"]: entry["score"] for entry in output}
        assert scores == pytest.approx(row["probabilities"], abs=1e-5)
    snippet = card_section_code(folder, "Use it with the transformers pipeline", monkeypatch)
    (output,) = snippet["classify"]([texts[0]], truncation=True)
    assert {entry["label"] for entry in output} == set(predictor.labels)
