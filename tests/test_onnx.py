"""`biotune export --format onnx`: model.onnx gives torch's logits on every head kind, and predict's rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from _slices import slice_config
from biotune.api import load
from biotune.cli import app
from biotune.data.registry import HOC_HALLMARKS
from biotune.errors import ConfigError
from biotune.export import CARD_FILE, export_model
from biotune.inference import predict_outputs
from biotune.models import build_model, extend_vocabulary, head_module, load_tokenizer, save_model
from biotune.onnx_model import ONNX_FILE, OnnxModel, export_onnx
from biotune.predict import as_items
from biotune.run_folder import ModelCard
from biotune.runs import run_training
from biotune.tasks import TaskOptions, add_placeholder_tokens, get_task, placeholder_pieces

NER_TEXTS = [
    "Mutations in the BRCA1 gene cause hereditary breast cancer. Carriers were screened.",
    "Acetaminophen (500 mg) induced hepatotoxicity in Wistar rats",
    "No adverse events were seen.",
]
RELATION_TEXTS = [
    "@GENE$ polymorphisms are associated with @DISEASE$ in Thai patients.",
    "No link was found between @DISEASE$ and the @GENE$ variant in a large cohort of 300 people.",
]
PAIRS = [
    {"sentence1": "Cells grow fast.", "sentence2": "Cells divide quickly in culture."},
    {"sentence1": "The drug failed in a phase II trial of 40 patients.", "sentence2": "Mice were fed."},
]
QUESTIONS = [
    {"question": "Does aspirin reduce fever?", "context": "Aspirin lowered the fever of most patients."},
    {"question": "Is it safe?", "context": "Three of the twelve patients had severe adverse events."},
]
HOC_TEXTS = ["Tumour cells invaded the stroma.", "Apoptosis was blocked by the inhibitor in vitro."]

# (name, task type, labels, pooling, pair encoding, placeholders, inputs): every head kind
CASES: list[tuple[str, str, list[str], str, str, tuple[str, ...], list[Any]]] = [
    ("token", "ner", ["B", "I", "O"], "cls", "cross", (), NER_TEXTS),
    ("sequence-cls", "re", ["0", "1"], "cls", "cross", ("@GENE$", "@DISEASE$"), RELATION_TEXTS),
    ("sequence-mean", "qa", ["yes", "no", "maybe"], "mean", "cross", (), QUESTIONS),
    ("regression-cross", "similarity", [], "cls", "cross", (), PAIRS),
    ("regression-mean", "similarity", [], "mean", "cross", (), PAIRS),
    ("regression-siamese", "similarity", [], "mean", "siamese", (), PAIRS),
    ("multilabel", "multilabel", list(HOC_HALLMARKS), "cls", "cross", (), HOC_TEXTS),
]


def build_folder(
    tiny_bert: Path,
    folder: Path,
    task_type: str,
    labels: list[str],
    pooling: str,
    pair_encoding: str,
    placeholders: tuple[str, ...],
) -> Path:
    """An untrained model folder whose head is scaled up, so its outputs differ from input to input."""
    task = get_task(task_type, labels, None, TaskOptions(pair_encoding=pair_encoding))  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = build_model(
        str(tiny_bert),
        task.head,
        labels,
        pooling=pooling,  # type: ignore[arg-type]
        pair_encoding=pair_encoding,  # type: ignore[arg-type]
    )
    tokenizer = load_tokenizer(str(tiny_bert))
    pieces = placeholder_pieces(tokenizer, placeholders)
    add_placeholder_tokens(tokenizer, placeholders)
    extend_vocabulary(model, tokenizer, pieces)
    head = head_module(model)
    if head is not None:
        with torch.no_grad():
            head.weight.mul_(40.0)
    card = {
        "head": task.head,
        "task_type": task_type,
        "labels": labels,
        "negative_label": None,
        "pooling": pooling,
        "pair_encoding": pair_encoding,
        "max_length": 48,  # short enough that the longer NER text is windowed
        "dataset": "custom",
        "seed": 0,
        "techniques": [],
        "config": {"dataset": None},
        "versions": {},
    }
    save_model(model.eval(), tokenizer, folder, ModelCard.model_validate(card))
    return folder


def rounded(value: Any, digits: int = 4) -> Any:
    """A row with its floats rounded: ONNX and torch agree to about 1e-6, not bit for bit."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_onnx_logits_and_rows_equal_torch_on_every_head_kind(
    case: tuple[str, str, list[str], str, str, tuple[str, ...], list[Any]], tiny_bert: Path, tmp_path: Path
) -> None:
    _, task_type, labels, pooling, pair_encoding, placeholders, inputs = case
    folder = build_folder(
        tiny_bert, tmp_path / "model", task_type, labels, pooling, pair_encoding, placeholders
    )
    exported = export_onnx(folder)
    assert exported.path == folder / ONNX_FILE and exported.max_difference <= 1e-4
    card = json.loads((folder / "biotune_model.json").read_text())
    assert card["onnx"]["inputs"] == exported.inputs and card["onnx"]["quantization"] is None

    with_torch, with_onnx = load(folder, backend="torch"), load(folder)
    assert with_torch.backend == "torch" and with_onnx.backend == "onnx"
    assert isinstance(with_onnx.model, OnnxModel)
    # batches of other sizes and lengths than the traced one: the axes are dynamic
    examples = [e for item in as_items(inputs) for e in with_torch._prepare(item).task_input.examples]
    features = with_torch.task.featurize(examples, with_torch.tokenizer, with_torch.max_length)
    pad = with_torch.tokenizer.pad_token_id
    head = with_torch.task.head
    torch_logits = predict_outputs(with_torch.model, features, head, pad, with_torch.recipe)
    onnx_logits = predict_outputs(with_onnx.model, features, head, pad, with_onnx.recipe)
    assert len(torch_logits) == len(onnx_logits) == len(features.features)
    for ours, theirs in zip(torch_logits, onnx_logits, strict=True):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    assert rounded(with_onnx.predict(inputs)) == rounded(with_torch.predict(inputs))
    if task_type == "ner":  # the scaled head tags some words as entities: the rows are worth comparing
        assert any(row["entities"] for row in with_torch.predict(inputs))


@pytest.fixture(scope="module")
def ner_run(shared_data: Path, tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ner-onnx")
    run_training(slice_config(shared_data, folder, "NCBI-disease", tiny_bert, 16), folder / "run")
    return folder / "run"


def test_cli_export_onnx_predicts_the_rows_of_the_run(ner_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "onnx"
    result = CliRunner().invoke(
        app, ["export", str(ner_run), "--seed", "0", "--to", str(target), "--format", "onnx"]
    )
    assert result.exit_code == 0, result.output
    assert "ONNX (fp32)" in result.output
    assert (target / ONNX_FILE).is_file() and (target / "model.safetensors").is_file()
    card = (target / CARD_FILE).read_text()
    assert "## ONNX" in card and "fp32, opset 17" in card
    cli = CliRunner().invoke(app, ["predict", str(target), "--text", NER_TEXTS[0]])
    assert cli.exit_code == 0, cli.output
    from_run = load(ner_run, seed=0).predict([NER_TEXTS[0]])[0]
    assert rounded(json.loads(cli.stdout)) == rounded(from_run)
    assert load(target).backend == "onnx"


def test_int8_export_is_smaller_and_close_to_fp32(ner_run: Path, tmp_path: Path) -> None:
    fp32 = export_model(ner_run, tmp_path / "fp32", seed=0, export_format="onnx").folder
    int8 = export_model(ner_run, tmp_path / "int8", seed=0, export_format="onnx", quantize="int8")
    assert int8.onnx is not None and int8.onnx.quantization == "int8"
    assert "int8 (onnxruntime dynamic quantization)" in (int8.folder / CARD_FILE).read_text()
    assert (int8.folder / ONNX_FILE).stat().st_size < 0.5 * (fp32 / ONNX_FILE).stat().st_size
    quantized, full = load(int8.folder), load(fp32)
    scores_int8, scores_fp32 = quantized.probabilities(NER_TEXTS), full.probabilities(NER_TEXTS)
    for a, b in zip(scores_int8, scores_fp32, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=0.05)  # int8 weights: close, not equal


def test_onnx_needs_onnxruntime_up_front(
    ner_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "biotune\[onnx\]"'):
        export_model(ner_run, tmp_path / "x", seed=0, export_format="onnx")
    assert not (tmp_path / "x").exists()  # nothing copied before the check
    result = CliRunner().invoke(
        app, ["export", str(ner_run), "--seed", "0", "--to", str(tmp_path / "y"), "--format", "onnx"]
    )
    assert result.exit_code != 0 and "biotune[onnx]" in str(result.exception)


def test_onnx_backend_errors_are_clear(ner_run: Path, tmp_path: Path) -> None:
    plain = export_model(ner_run, tmp_path / "plain", seed=0).folder
    assert load(plain).backend == "torch"  # no model.onnx: torch, as before
    with pytest.raises(ConfigError, match="no ONNX model here"):
        load(plain, backend="onnx")
    with pytest.raises(ConfigError, match="unknown backend"):
        load(plain, backend="tensorrt")
    with pytest.raises(ConfigError, match="--quantize applies to --format onnx"):
        export_model(ner_run, tmp_path / "q", quantize="int8")
    with pytest.raises(ConfigError, match="unknown quantization"):
        export_model(ner_run, tmp_path / "q", export_format="onnx", quantize="int4")
    onnx = export_model(ner_run, tmp_path / "onnx", seed=0, export_format="onnx").folder
    with pytest.raises(ConfigError, match="runs on the CPU"):
        load(onnx, device="cuda")
