"""GPU check (issue 13): biotune in fp32 and bf16 against a Hugging Face Trainer with bf16=True, one GPU.

A BERT-base-sized encoder (12 layers, hidden 768, random weights built from a config: no download) with the
packaged model's tokenizer, trained one epoch and scored on dev, on two inputs:
  NCBI-disease at max length 128 (short sentences, token classification), and
  HoC at max length 512 (whole abstracts, multi-label).
Systems: biotune fp32, biotune bf16, and the Trainer (`bf16=True`, run_ner.py / run_glue.py style: random
order, dynamic padding). Figures per system: real train and eval tokens/s, peak GPU memory, model FLOPs
utilization against the GPU's dense bf16 matmul rate measured in the same run, dev score after one epoch
(random weights: the score only shows that training moves; the speed and memory are the point). Under 8
minutes on one GPU with the default --examples.

  python benchmarks/gpu_check.py                        # on a GPU
  python benchmarks/gpu_check.py --device cpu --tiny    # the dry run the test suite runs (a tiny encoder)

The last line is machine-readable:
  gpu_check device=<name> ncbi_bf16_vs_trainer=<x> ncbi_bf16_vs_fp32=<x> hoc_bf16_vs_trainer=<x> ...
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PrinterCallback,
    TrainingArguments,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hf_baselines import PhaseCountingCollator, TimedTrainer, encode_like_run_ner  # noqa: E402
from biotune import metrics  # noqa: E402
from biotune.config import TrainConfig  # noqa: E402
from biotune.data.loading import load_dataset  # noqa: E402
from biotune.models import resolve_model_path  # noqa: E402
from biotune.runs import build_context, resolve_config  # noqa: E402
from biotune.training import train_seed  # noqa: E402

CASES = {"ncbi": ("ncbi-disease", 128, 32), "hoc": ("HoC", 512, 16)}  # dataset, max length, batch
SYSTEMS = ("biotune-fp32", "biotune-bf16", "trainer-bf16")


@dataclass
class Figures:
    case: str
    system: str
    train_tokens_per_s: float
    eval_tokens_per_s: float
    peak_memory_mb: float
    mfu: float
    dev_score: float
    seconds: float


def build_encoder(folder: Path, tiny: bool) -> Path:
    """A random BERT-base (or a tiny one) with the packaged tokenizer, saved as a model folder."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm-l6"))
    size = (
        {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
        if tiny
        else {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
    )
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, **size)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    size = 4096 if device.type == "cuda" else 512
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    (a @ b).sum().item()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * size**3 * done / (time.perf_counter() - started)


def training_flops(model: torch.nn.Module, tokens: int) -> float:
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    non_embedding = sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
    return 6.0 * non_embedding * tokens


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    from biotune.resources import peak_rss_bytes

    return peak_rss_bytes() / 2**20


def run_biotune(case: str, model: Path, args: argparse.Namespace, precision: str, rate: float) -> Figures:
    dataset, max_length, batch = CASES[case]
    device = torch.device(args.device)
    config = TrainConfig(
        dataset=dataset,
        data_dir=args.data_dir,
        model=str(model),
        seeds=[0],
        epochs=1,
        batch_size=batch,
        learning_rate=5e-5,
        max_length=max_length,
        limit_train=args.examples,
        checkpoint="last",
        device=args.device,
        precision=precision,
        save_model=False,
    )
    ctx = build_context(resolve_config(config))
    ctx.test = None
    reset_peak(device)
    started = time.perf_counter()
    outcome = train_seed(ctx, 0)
    meter = outcome.throughput
    built = AutoModelForTokenClassification.from_pretrained(str(model), num_labels=3)
    return Figures(
        case=case,
        system=f"biotune-{precision}",
        train_tokens_per_s=meter.train_tokens / meter.train_seconds,
        eval_tokens_per_s=meter.eval_tokens / meter.eval_seconds,
        peak_memory_mb=peak_mb(device),
        mfu=training_flops(built, meter.train_tokens) / meter.train_seconds / rate,
        dev_score=float(outcome.dev.metrics["score"]) if outcome.dev else float("nan"),
        seconds=time.perf_counter() - started,
    )


def run_trainer(case: str, model: Path, args: argparse.Namespace, rate: float) -> Figures:
    dataset, max_length, batch = CASES[case]
    device = torch.device(args.device)
    splits = load_dataset(dataset, args.data_dir, splits=("train", "dev"))
    train = list(splits.train[: args.examples]) if args.examples else list(splits.train)
    dev = list(splits.dev)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    transformers.set_seed(0)
    if case == "ncbi":
        labels = sorted({t for s in train for t in s.tags} | {t for s in dev for t in s.tags})
        ids = {label: i for i, label in enumerate(labels)}
        train_items = encode_like_run_ner(train, tokenizer, ids, max_length).items
        dev_encoded = encode_like_run_ner(dev, tokenizer, ids, max_length)
        network = AutoModelForTokenClassification.from_pretrained(str(model), num_labels=len(labels))
        collator = PhaseCountingCollator(DataCollatorForTokenClassification(tokenizer))

        def score(prediction: EvalPrediction) -> dict[str, float]:
            argmax = np.asarray(prediction.predictions).argmax(-1)
            gold_rows, predicted = [list(s.tags) for s in dev], [["O"] * len(s.words) for s in dev]
            for row, words in enumerate(dev_encoded.words_of_labels):
                positions = np.flatnonzero(np.asarray(prediction.label_ids)[row] != -100)
                for position, word in zip(positions, words, strict=True):
                    predicted[row][word] = labels[argmax[row, position]]
            return {"score": float(metrics.compute(dataset, gold_rows, predicted)["score"])}

        dev_items = dev_encoded.items
    else:
        n = len(splits.spec.labels) if hasattr(splits.spec, "labels") else 10

        def encode(documents: Sequence[Any]) -> list[dict[str, Any]]:
            encoded = tokenizer([d.text for d in documents], truncation=True, max_length=max_length)
            rows = []
            for i, d in enumerate(documents):
                target = [0.0] * n
                for label in d.labels:
                    target[label] = 1.0
                rows.append({**{k: encoded[k][i] for k in encoded}, "labels": target})
            return rows

        train_items, dev_items = encode(train), encode(dev)
        network = AutoModelForSequenceClassification.from_pretrained(
            str(model), num_labels=n, problem_type="multi_label_classification"
        )
        collator = PhaseCountingCollator(DataCollatorWithPadding(tokenizer))

        def score(prediction: EvalPrediction) -> dict[str, float]:
            chosen = np.asarray(prediction.predictions) > 0
            predicted = [frozenset(np.flatnonzero(row).tolist()) for row in chosen]
            return {"score": float(metrics.compute(dataset, [d.labels for d in dev], predicted)["score"])}

    with tempfile.TemporaryDirectory() as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=1,
            per_device_train_batch_size=batch,
            per_device_eval_batch_size=batch,
            learning_rate=5e-5,
            warmup_steps=0.1,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=0,
            bf16=True,
            use_cpu=device.type == "cpu",
            remove_unused_columns=False,
        )
        trainer = TimedTrainer(
            model=network,
            args=arguments,
            train_dataset=train_items,
            eval_dataset=dev_items,
            processing_class=tokenizer,
            compute_metrics=score,
            counting=collator,
        )
        trainer.remove_callback(PrinterCallback)
        reset_peak(device)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    train_seconds = seconds - trainer.eval_seconds
    last_score = float(trainer.evaluations[-1].get("eval_score", "nan")) if trainer.evaluations else math.nan
    return Figures(
        case=case,
        system="trainer-bf16",
        train_tokens_per_s=collator.tokens["train"] / train_seconds,
        eval_tokens_per_s=collator.tokens["eval"] / trainer.eval_seconds,
        peak_memory_mb=peak_mb(device),
        mfu=training_flops(network, collator.tokens["train"]) / train_seconds / rate,
        dev_score=last_score,
        seconds=seconds,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu for the dry run")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, hidden-32 encoder (the dry run)")
    parser.add_argument("--examples", type=int, default=None, help="first N train examples (default: all)")
    parser.add_argument("--cases", default="ncbi,hoc", help="comma-separated subset of ncbi,hoc")
    parser.add_argument("--data-dir", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Figures]:
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    import logging
    import warnings

    logging.getLogger("biotune").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible: run with --device cpu --tiny for the dry run")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rate = matmul_rate(device, torch.bfloat16)
    print(
        f"device {name}; dense bf16 matmul {rate / 1e12:.1f} TFLOP/s; torch {torch.__version__}", flush=True
    )
    cases = [c for c in args.cases.split(",") if c]
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory() as folder:
        model = build_encoder(Path(folder) / "encoder", args.tiny)
        for case in cases:
            for system in SYSTEMS:
                if system == "trainer-bf16":
                    result = run_trainer(case, model, args, rate)
                else:
                    result = run_biotune(case, model, args, system.split("-")[1], rate)
                figures.append(result)
                print(
                    f"  {case:<4} {system:<13} train {result.train_tokens_per_s:8.0f} tok/s, eval "
                    f"{result.eval_tokens_per_s:8.0f} tok/s, peak {result.peak_memory_mb:7.0f} MB, MFU "
                    f"{result.mfu:.2f}, dev {result.dev_score:6.2f}, {result.seconds:6.1f} s",
                    flush=True,
                )
    ratios = []
    for case in cases:
        row = {f.system: f for f in figures if f.case == case}
        bf16, fp32, trainer = row["biotune-bf16"], row["biotune-fp32"], row["trainer-bf16"]
        ratios.append(f"{case}_bf16_vs_trainer={bf16.train_tokens_per_s / trainer.train_tokens_per_s:.2f}")
        ratios.append(f"{case}_bf16_vs_fp32={bf16.train_tokens_per_s / fp32.train_tokens_per_s:.2f}")
        ratios.append(f"{case}_bf16_mfu={bf16.mfu:.2f}")
    print(f"gpu_check device={name.replace(' ', '_')} " + " ".join(ratios), flush=True)
    assert statistics.fmean(f.seconds for f in figures) >= 0
    return figures


if __name__ == "__main__":
    main()
