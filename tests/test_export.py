"""`biotune export`: a plain Hugging Face folder whose model card code gives biotune's numbers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.special import softmax
from typer.testing import CliRunner

from _run_files import real_results, seed_result, split
from _slices import slice_config
from biotune.api import load
from biotune.cli import app
from biotune.errors import BiotuneError, ConfigError
from biotune.export import CARD_FILE, FOLDER_PLACEHOLDER, export_model, model_card
from biotune.run_folder import Baselines, ModelCard
from biotune.runs import run_training, summarize


def _train(shared_data: Path, tiny_bert: Path, folder: Path, dataset: str, **extra: Any) -> Path:
    run_training(slice_config(shared_data, folder, dataset, tiny_bert, 16, **extra), folder / "run")
    return folder / "run"


@pytest.fixture(scope="module")
def ner_run(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(shared_data, tiny_bert, tmp_path_factory.mktemp("ner"), "NCBI-disease", seeds=[0, 1])


@pytest.fixture(scope="module")
def relation_run(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(shared_data, tiny_bert, tmp_path_factory.mktemp("gad"), "GAD")


@pytest.fixture(scope="module")
def mean_pooled_run(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(shared_data, tiny_bert, tmp_path_factory.mktemp("sts"), "BIOSSES", pooling="mean")


def card_code(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the card's transformers-only snippet as written (biotune made unimportable); return its names."""
    readme = (folder / CARD_FILE).read_text(encoding="utf-8")
    match = re.search(r"## Use it without biotune.*?```python\n(.*?)```", readme, re.S)
    assert match, "the card has a transformers snippet"
    code = match.group(1)
    assert code.count(FOLDER_PLACEHOLDER) == 1
    monkeypatch.setitem(sys.modules, "biotune", None)  # `import biotune` now raises ImportError
    namespace: dict[str, Any] = {"__name__": "card_snippet"}
    exec(compile(code.replace(FOLDER_PLACEHOLDER, str(folder)), "README.md", "exec"), namespace)
    monkeypatch.delitem(sys.modules, "biotune")
    return namespace


NER_SENTENCES = [
    "Mutations in the BRCA1 gene cause hereditary breast cancer .",
    "Acetaminophen ( 500 mg ) induced hepatotoxicity in Wistar rats .",
    "No adverse events were seen",
]


def test_token_model_export_matches_biotune_predict(
    ner_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = export_model(ner_run, tmp_path / "export", seed=0)
    folder = result.folder
    assert result.seed == 0 and not result.selected_as_best
    assert {"model.safetensors", "config.json", "tokenizer.json", "biotune_model.json", "README.md"} <= {
        p.name for p in folder.iterdir()
    }
    config = json.loads((folder / "config.json").read_text())
    # untyped B/I tags get an entity type (own files: ENTITY), so a pipeline's groups do not read LABEL_1
    assert config["id2label"] == {"0": "B-ENTITY", "1": "I-ENTITY", "2": "O"}
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 64

    snippet = card_code(folder, monkeypatch)
    exported = load(folder)
    for text in NER_SENTENCES:
        words = text.split()
        plain = softmax(snippet["word_logits"](words).numpy(), axis=-1)
        ours = exported.probabilities([text])[0]
        assert plain.shape == ours.shape == (len(words), 3)
        np.testing.assert_allclose(plain, ours, atol=1e-5)
        hub_names = [config["id2label"][str(k)] for k in ours.argmax(axis=-1)]
        assert snippet["predict"](words) == hub_names
    assert exported.predict(NER_SENTENCES) == load(ner_run, seed=0).predict(NER_SENTENCES)
    cli = CliRunner().invoke(app, ["predict", str(folder), "--text", NER_SENTENCES[1]])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout) == exported.predict([NER_SENTENCES[1]])[0]


RELATION_TEXTS = [
    "@GENE$ polymorphisms are associated with @DISEASE$ in Thai patients.",
    "No link was found between @DISEASE$ and the @GENE$ variant.",
]


def test_sequence_model_export_matches_biotune_predict(
    relation_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = export_model(relation_run, tmp_path / "export", seed="0").folder
    snippet = card_code(folder, monkeypatch)
    assert snippet["config"].id2label == {0: "0", 1: "1"}
    exported = load(folder)
    assert exported.placeholders == ["@DISEASE$", "@GENE$"]  # the tokenizer kept them as single tokens
    for text, row in zip(RELATION_TEXTS, exported.predict(RELATION_TEXTS), strict=True):
        plain = softmax(snippet["logits"](text).numpy())
        np.testing.assert_allclose(plain, exported.probabilities([text])[0], atol=1e-5)
        assert snippet["predict"](text) == pytest.approx(row["probabilities"], abs=1e-5)
    assert exported.predict(RELATION_TEXTS) == load(relation_run, seed=0).predict(RELATION_TEXTS)


def test_mean_pooled_export_is_encoder_plus_head_and_the_card_code_pools(
    mean_pooled_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = export_model(mean_pooled_run, tmp_path / "export", seed=0).folder
    card = (folder / CARD_FILE).read_text()
    assert (folder / "head.safetensors").is_file()
    assert "This model mean-pools" in card and "AutoModelForSequenceClassification" not in card
    snippet = card_code(folder, monkeypatch)
    exported = load(folder)
    pairs = [("Cells grow fast.", "Cells divide quickly."), ("The drug failed.", "Mice were fed a diet.")]
    rows = exported.predict([{"sentence1": a, "sentence2": b} for a, b in pairs])
    for (first, second), row in zip(pairs, rows, strict=True):
        assert float(snippet["logits"](first, second)[0]) == pytest.approx(row["score"], abs=1e-5)
        assert snippet["predict"](first, second) == pytest.approx(row["score"], abs=1e-5)


def test_siamese_export_card_code_gives_biotune_scores(
    shared_data: Path, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _train(shared_data, tiny_bert, tmp_path, "BIOSSES", pair_encoding="siamese")
    folder = export_model(run, tmp_path / "export", seed=0).folder
    assert "This model is siamese" in (folder / CARD_FILE).read_text()
    snippet = card_code(folder, monkeypatch)
    exported = load(folder)
    pairs = [("Cells grow fast.", "Cells divide quickly."), ("The drug failed.", "Mice were fed a diet.")]
    rows = exported.predict([{"sentence1": a, "sentence2": b} for a, b in pairs])
    for (first, second), row in zip(pairs, rows, strict=True):
        assert snippet["predict"](first, second) == pytest.approx(row["score"], abs=1e-5)
    assert rows == load(run, seed=0).predict([{"sentence1": a, "sentence2": b} for a, b in pairs])


def test_card_reports_every_seed_with_mean_std_and_failures() -> None:
    seeds = [
        seed_result(0, "ok", dev=80.0, test=78.0, best_epoch=3),
        seed_result(1, "ok", dev=86.0, test=82.0, best_epoch=5),
        seed_result(
            2,
            "failed",
            dev=1.0,
            test=0.5,
            error="collapsed: dev score 1.00 is no better than the trivial baseline",
            best_epoch=1,
        ),
    ]
    config = {
        **real_results().config,
        "dataset": "BIOSSES",
        "model": "minilm-l6",
        "learning_rate": 1e-5,
        "batch_size": 16,
        "epochs": 30,
        "warmup_ratio": 0.1,
        "techniques": ["reinit:1"],
        "max_length": 128,
    }
    results = real_results(
        dataset="BIOSSES",
        technique_label="reinit:1",
        config=config,
        seeds=seeds,
        summary=summarize(seeds, "test"),
        summary_dev=summarize(seeds, "dev"),
        baseline=Baselines(trivial={"dev": split(0.0)}, zero_shot_cosine={"test": split(84.7)}),
    )
    card = ModelCard(
        task_type="similarity",
        head="regression",
        labels=[],
        pooling="cls",
        max_length=128,
        versions={"biotune": "0.1.0", "torch": "2.13"},
    )
    text = model_card(results, card, 1, [], selected_as_best=True)
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in text  # the minilm-l6 alias, named
    assert "**seed 1** of a 3-seed run, chosen as the successful seed with the best dev score" in text
    assert "Metric: Pearson" in text
    for row in (
        "| learning rate | 1e-05 |",
        "| batch size | 16 |",
        "| epochs | 30 |",
        "| stability technique(s) | reinit:1 (reinit:1) |",
        "| dataset | BIOSSES |",
    ):
        assert row in text
    assert "| 0 | ok | 3 | 80.00 | 78.00 |  |" in text
    assert "| 1 **(this model)** | ok | 5 | 86.00 | 82.00 |  |" in text
    assert "| 2 | failed | 1 | 1.00 | 0.50 | collapsed: dev score 1.00" in text
    # test scores 78 and 82: mean 80, sample std sqrt(8) = 2.83; the failed seed counted, not averaged
    assert (
        "test: mean 80.00 ± 2.83 (sample std) over 2 successful seed(s), min 78.00, max 82.00; "
        "failed runs: 1 of 3." in text
    )
    assert "dev: mean 83.00 ± 4.24" in text
    assert "trivial dev 0.00, zero-shot cosine test 84.70" in text
    assert '"sentence1": "The protein inhibits tumour growth."' in text  # pair tasks: a JSONL example


def test_export_refuses_to_clobber_and_needs_a_run_folder(ner_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        export_model(ner_run, other, seed=0)
    with pytest.raises(ConfigError, match="not an earlier biotune export"):
        export_model(ner_run, other, seed=0, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"

    first = export_model(ner_run, tmp_path / "out", seed=0).folder
    (first / "stale.bin").write_text("old")
    export_model(ner_run, first, seed=1, overwrite=True)
    assert not (first / "stale.bin").exists()
    assert json.loads((first / "biotune_model.json").read_text())["seed"] == 1

    with pytest.raises(ConfigError, match="outside the run's model folder"):
        export_model(ner_run, ner_run / "seed-0" / "model" / "inner", seed=0)
    with pytest.raises(ConfigError, match="give the run folder above it"):
        export_model(ner_run / "seed-0" / "model", tmp_path / "x")
    with pytest.raises(ConfigError, match="no seed 7"):
        export_model(ner_run, tmp_path / "y", seed=7)


def test_cli_export(ner_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", str(ner_run), "--seed", "1", "--to", str(tmp_path / "hub")])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "hub" / CARD_FILE).read_text()
    assert "**seed 1** of a 2-seed run, chosen by hand" in card
    records = json.loads((ner_run / "results.json").read_text())["seeds"]
    for record in records:  # both seeds listed with their scores, whatever their status
        assert f"| {record['status']} | {record['best_epoch']} | {record['dev']['score']:.2f} |" in card
    again = CliRunner().invoke(app, ["export", str(ner_run), "--seed", "1", "--to", str(tmp_path / "hub")])
    assert isinstance(again.exception, BiotuneError) and "--overwrite" in str(again.exception)
