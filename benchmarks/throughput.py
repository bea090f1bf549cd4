"""CPU throughput of biotune's fine-tuning engine against two Hugging Face Trainer baselines (issues 7, 13).

One run, one model, one data slice, one set of hyper-parameters, four systems:

  biotune  biotune.training.train_seed: token-budget batches, sorted evaluation, fused AdamW, cheaper dropout
           masks (biotune.dropout), fp32
  bf16     the same engine with precision bf16 (autocast to bfloat16 around the forward pass, fp32 loss and
           master weights; see biotune.device)
  A        the plain style of Hugging Face's run_ner.py example: Trainer, DataCollatorForTokenClassification,
           random order, no length grouping, the example's other defaults (fused AdamW, evaluation in file
           order); evaluation batches as large as training ones, as in the issue's measurements
  B        A with train_sampling_strategy="group_by_length" (which in transformers 5.x also groups evaluation)

Every system trains `--epochs` epochs on the first `--sentences` NCBI-disease training sentences and scores
the dev set after every epoch; dev F1 is the final model's, scored the same way for all three (entity F1
over every word of every dev sentence, biotune.metrics). The systems run in alternating order, once per
seed (`--repeats`), and the figures are medians over the seeds (dev F1: the mean).

Figures per system: wall time of a whole run (tokenization, model loading, training, evaluation), real
(non-padding) tokens per second in training and in evaluation, the share of computed positions that are
padding, dev F1. Model FLOPs utilization: 6 x non-embedding parameters x real tokens, plus attention
(12 x layers x hidden x length^2 per sequence), per second of training, over the dense fp32 matmul rate
measured just before and just after that run (for bf16: over the dense bf16 matmul rate, measured the same
way).

Then a long-input case (skip with --no-long): PubMedQA (question, context) pairs at max length 512, where
there is little padding to save and the per-token cost counts. biotune fp32, biotune bf16 and baseline A
written like run_glue.py (AutoModelForSequenceClassification, DataCollatorWithPadding, random order), one
epoch each (--long-epochs), seeds alternated (--long-repeats), dev accuracy after training.

The last line is machine-readable:

  train_speedup=<x vs A> train_speedup_b=<x vs B> eval_speedup=<x vs A> f1_delta=<biotune - A> mfu=<m>
  bf16_speedup=<bf16 vs biotune fp32, train> bf16_eval_speedup=<eval> bf16_f1_delta=<bf16 - fp32> bf16_mfu=<m>
  long_speedup=<bf16 vs A at 512, train> long_speedup_fp32=<fp32 vs A> long_acc_delta=<bf16 - A>

Quick run while developing (about 3 minutes on 2 free cores):
  python benchmarks/throughput.py --sentences 300 --epochs 1 --repeats 1 --long-examples 64
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from torch import nn  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    EvalPrediction,
    PrinterCallback,
    TrainingArguments,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hf_baselines import (  # noqa: E402
    Encoded,
    PhaseCountingCollator,
    TimedTrainer,
    encode_like_run_ner,
    first_output,
    word_tags,
)
from biotune import metrics  # noqa: E402
from biotune.config import TrainConfig  # noqa: E402
from biotune.data.examples import Question, TaggedSentence  # noqa: E402
from biotune.data.loading import load_dataset  # noqa: E402
from biotune.models import resolve_model_path  # noqa: E402
from biotune.runs import build_context, resolve_config  # noqa: E402
from biotune.training import train_seed  # noqa: E402

DATASET = "ncbi-disease"
LONG_DATASET = "pubmedqa"
SYSTEMS = ("biotune", "bf16", "A", "B")
LONG_SYSTEMS = ("biotune", "bf16", "A")
PRECISION = {"biotune": "fp32", "bf16": "bf16"}


@dataclass
class Settings:
    model: str
    sentences: int
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    max_length: int
    data_dir: Path | None


class Rates:
    """Real tokens per second of the train and evaluation phases, from a result's counts."""

    train_tokens: int
    train_seconds: float
    eval_tokens: int
    eval_seconds: float

    @property
    def train_tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds

    @property
    def eval_tokens_per_s(self) -> float:
        return self.eval_tokens / self.eval_seconds


@dataclass
class RunResult(Rates):
    """One system, one seed."""

    system: str
    seed: int
    wall_seconds: float
    train_seconds: float
    train_tokens: int
    train_positions: int
    train_flops: float
    eval_seconds: float
    eval_tokens: int
    eval_positions: int
    evaluations: int
    dev_f1: float
    matmul_flops: float

    @property
    def train_padding(self) -> float:
        return 1 - self.train_tokens / self.train_positions

    @property
    def eval_padding(self) -> float:
        return 1 - self.eval_tokens / self.eval_positions

    @property
    def mfu(self) -> float:
        return self.train_flops / self.train_seconds / self.matmul_flops


# --- the machine and the model -------------------------------------------------------------------------


def matmul_flops_per_second(
    size: int = 2048, seconds: float = 3.0, dtype: torch.dtype = torch.float32
) -> float:
    """Dense matmul rate with torch's current threads: the denominator of the FLOPs utilization."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up: first-call allocation and thread start-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return 2 * size**3 * done / (time.perf_counter() - started)


@dataclass(frozen=True)
class ModelShape:
    non_embedding_parameters: int
    layers: int
    hidden: int

    def training_flops(self, sequence_lengths: Sequence[int]) -> float:
        """Forward + backward: 6 FLOPs per non-embedding parameter per token, plus the attention scores
        and the weighted sum (4 x length^2 x hidden per layer forward, three times that with backward)."""
        tokens = sum(sequence_lengths)
        squares = sum(n * n for n in sequence_lengths)
        return 6 * self.non_embedding_parameters * tokens + 12 * self.layers * self.hidden * squares


def model_shape(model: nn.Module) -> ModelShape:
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    non_embedding = sum(p.numel() for p in model.parameters() if id(p) not in embedding_weights)
    return ModelShape(non_embedding, model.config.num_hidden_layers, model.config.hidden_size)


# --- biotune ------------------------------------------------------------------------------------------


def train_biotune(
    dataset: str, settings: Settings | LongSettings, limit: int | None, seed: int, system: str
) -> tuple[Any, Any]:
    """One biotune seed as the baselines run theirs: the final model scored on dev (no test)."""
    config = TrainConfig(
        dataset=dataset,
        data_dir=settings.data_dir,
        model=settings.model,
        seeds=[seed],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        max_length=settings.max_length,
        limit_train=limit,
        checkpoint="last",  # the final model, as the Trainer baselines report it
        device="cpu",
        precision=PRECISION[system],
        save_model=False,
    )
    ctx = build_context(resolve_config(config))
    ctx.test = None  # the baselines score dev only
    outcome = train_seed(ctx, seed)
    if outcome.dev is None:  # diverged; a collapsed seed (a short run's F1 of 0) still counts
        raise RuntimeError(f"{system} seed {seed} failed: {outcome.error}")
    return ctx, outcome


def run_biotune(settings: Settings, seed: int, shape: ModelShape, system: str = "biotune") -> RunResult:
    started = time.perf_counter()
    ctx, outcome = train_biotune(DATASET, settings, settings.sentences, seed, system)
    meter = outcome.throughput
    lengths = ctx.train.features.lengths * len(outcome.history)
    return RunResult(
        system=system,
        seed=seed,
        wall_seconds=time.perf_counter() - started,
        train_seconds=meter.train_seconds,
        train_tokens=meter.train_tokens,
        train_positions=meter.train_positions,
        train_flops=shape.training_flops(lengths),
        eval_seconds=meter.eval_seconds,
        eval_tokens=meter.eval_tokens,
        eval_positions=meter.eval_positions,
        evaluations=len(outcome.history),
        dev_f1=float(outcome.dev.metrics["score"]),
        matmul_flops=0.0,
    )


# --- the Hugging Face baselines ------------------------------------------------------------------------


def word_level_f1(
    dev: Sequence[TaggedSentence], labels: list[str], encoded: Encoded, counting: PhaseCountingCollator
) -> Callable[[EvalPrediction], dict[str, float]]:
    """compute_metrics: each labelled position's prediction goes to its word; words cut off by the max
    length are predicted O. Scored like biotune scores, on every word of every sentence."""
    gold = [list(s.tags) for s in dev]

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = first_output(prediction.predictions)
        predicted = word_tags(dev, labels, encoded, logits, prediction.label_ids, counting.eval_order)
        return {"f1": float(metrics.compute(DATASET, gold, predicted)["score"])}

    return compute


def run_trainer(
    system: str, settings: Settings, seed: int, train: Sequence[TaggedSentence], dev: Sequence[TaggedSentence]
) -> RunResult:
    started = time.perf_counter()
    path = resolve_model_path(settings.model)
    labels = sorted({tag for s in train for tag in s.tags} | {tag for s in dev for tag in s.tags})
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_set = encode_like_run_ner(train, tokenizer, label_ids, settings.max_length)
    dev_set = encode_like_run_ner(dev, tokenizer, label_ids, settings.max_length)
    transformers.set_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )
    counting = PhaseCountingCollator(DataCollatorForTokenClassification(tokenizer))
    with tempfile.TemporaryDirectory() as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            warmup_steps=settings.warmup_ratio,  # below 1: a ratio of the total steps (transformers 5)
            train_sampling_strategy="group_by_length" if system == "B" else "random",
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=seed,
            use_cpu=True,
            remove_unused_columns=False,  # keep "index" for PhaseCountingCollator, which drops it
        )
        trainer = TimedTrainer(
            model=model,
            args=arguments,
            train_dataset=train_set.items,
            eval_dataset=dev_set.items,
            processing_class=tokenizer,
            compute_metrics=word_level_f1(dev, labels, dev_set, counting),
            counting=counting,
        )
        trainer.remove_callback(PrinterCallback)  # the figures are printed here, once
        train_started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - train_started - trainer.eval_seconds
    lengths = [len(item["input_ids"]) for item in train_set.items] * settings.epochs
    return RunResult(
        system=system,
        seed=seed,
        wall_seconds=time.perf_counter() - started,
        train_seconds=train_seconds,
        train_tokens=counting.tokens["train"],
        train_positions=counting.positions["train"],
        train_flops=model_shape(model).training_flops(lengths),
        eval_seconds=trainer.eval_seconds,
        eval_tokens=counting.tokens["eval"],
        eval_positions=counting.positions["eval"],
        evaluations=len(trainer.evaluations),
        dev_f1=float(trainer.evaluations[-1]["eval_f1"]),
        matmul_flops=0.0,
    )


# --- the long-input case: PubMedQA at 512 --------------------------------------------------------------


@dataclass
class LongResult(Rates):
    system: str
    seed: int
    wall_seconds: float
    train_seconds: float
    train_tokens: int
    eval_seconds: float
    eval_tokens: int
    dev_accuracy: float


def run_long_biotune(settings: LongSettings, seed: int, system: str) -> LongResult:
    started = time.perf_counter()
    _, outcome = train_biotune(LONG_DATASET, settings, settings.examples, seed, system)
    meter = outcome.throughput
    return LongResult(
        system=system,
        seed=seed,
        wall_seconds=time.perf_counter() - started,
        train_seconds=meter.train_seconds,
        train_tokens=meter.train_tokens,
        eval_seconds=meter.eval_seconds,
        eval_tokens=meter.eval_tokens,
        dev_accuracy=float(outcome.dev.metrics["score"]),
    )


def run_long_trainer(
    settings: LongSettings, seed: int, train: Sequence[Question], dev: Sequence[Question]
) -> LongResult:
    """run_glue.py on (question, context) pairs: truncation of the context, as biotune cuts it."""
    started = time.perf_counter()
    path = resolve_model_path(settings.model)
    labels = sorted({q.label for q in train} | {q.label for q in dev})
    label_ids = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(questions: Sequence[Question]) -> list[dict[str, Any]]:
        encoded = tokenizer(
            [q.question for q in questions],
            [q.context for q in questions],
            truncation="only_second",
            max_length=settings.max_length,
        )
        return [
            {**{key: encoded[key][i] for key in encoded}, "labels": label_ids[q.label]}
            for i, q in enumerate(questions)
        ]

    train_set, dev_set = encode(train), encode(dev)
    transformers.set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )
    counting = PhaseCountingCollator(DataCollatorWithPadding(tokenizer))

    def accuracy(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = np.asarray(logits).argmax(-1)
        return {"accuracy": float((predicted == np.asarray(prediction.label_ids)).mean() * 100)}

    with tempfile.TemporaryDirectory() as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            warmup_steps=settings.warmup_ratio,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=seed,
            use_cpu=True,
        )
        trainer = TimedTrainer(
            model=model,
            args=arguments,
            train_dataset=train_set,
            eval_dataset=dev_set,
            processing_class=tokenizer,
            compute_metrics=accuracy,
            counting=counting,
        )
        trainer.remove_callback(PrinterCallback)
        train_started = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - train_started - trainer.eval_seconds
    return LongResult(
        system="A",
        seed=seed,
        wall_seconds=time.perf_counter() - started,
        train_seconds=train_seconds,
        train_tokens=counting.tokens["train"],
        eval_seconds=trainer.eval_seconds,
        eval_tokens=counting.tokens["eval"],
        dev_accuracy=float(trainer.evaluations[-1]["eval_accuracy"]),
    )


@dataclass
class LongSettings:
    model: str
    examples: int | None
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    max_length: int
    data_dir: Path | None


def run_long_case(settings: LongSettings, repeats: int) -> tuple[list[LongResult], dict[str, float]]:
    splits = load_dataset(LONG_DATASET, settings.data_dir, splits=("train", "dev"))
    train = list(splits.train[: settings.examples]) if settings.examples else list(splits.train)
    dev = list(splits.dev)
    print(
        f"{LONG_DATASET} at max length {settings.max_length}: {len(train)} train questions, {len(dev)} dev; "
        f"batch {settings.batch_size}, lr {settings.learning_rate}, {settings.epochs} epoch(s)",
        flush=True,
    )
    results: list[LongResult] = []
    for repeat in range(repeats):
        order = LONG_SYSTEMS if repeat % 2 == 0 else LONG_SYSTEMS[::-1]
        for system in order:
            before = matmul_flops_per_second()
            if system == "A":
                result = run_long_trainer(settings, repeat, train, dev)
            else:
                result = run_long_biotune(settings, repeat, system)
            rate = (before + matmul_flops_per_second()) / 2
            results.append(result)
            print(
                f"  {system:<7} seed {repeat}: wall {result.wall_seconds:6.1f}s, train "
                f"{result.train_tokens_per_s:5.0f} tok/s, eval {result.eval_tokens_per_s:5.0f} tok/s, "
                f"dev accuracy {result.dev_accuracy:.2f} (fp32 matmul {rate / 1e9:.0f} GFLOP/s)",
                flush=True,
            )
    summary: dict[str, dict[str, float]] = {}
    for system in LONG_SYSTEMS:
        runs = [r for r in results if r.system == system]
        summary[system] = {
            "wall_s": statistics.median(r.wall_seconds for r in runs),
            "train_tok_s": statistics.median(r.train_tokens_per_s for r in runs),
            "eval_tok_s": statistics.median(r.eval_tokens_per_s for r in runs),
            "dev_acc": statistics.fmean(r.dev_accuracy for r in runs),
        }
    print(f"{'long':<8} {'wall s':>8} {'train tok/s':>12} {'eval tok/s':>11} {'dev acc':>8}")
    for system, row in summary.items():
        print(
            f"{system:<8} {row['wall_s']:>8.1f} {row['train_tok_s']:>12.0f} {row['eval_tok_s']:>11.0f} "
            f"{row['dev_acc']:>8.2f}"
        )
    ratios = {
        "long_speedup": summary["bf16"]["train_tok_s"] / summary["A"]["train_tok_s"],
        "long_speedup_fp32": summary["biotune"]["train_tok_s"] / summary["A"]["train_tok_s"],
        "long_eval_speedup": summary["bf16"]["eval_tok_s"] / summary["A"]["eval_tok_s"],
        "long_acc_delta": summary["bf16"]["dev_acc"] - summary["A"]["dev_acc"],
    }
    return results, ratios


# --- the run ------------------------------------------------------------------------------------------


def order_for(repeat: int, systems: Sequence[str] = SYSTEMS) -> tuple[str, ...]:
    """Alternate: forward on even repeats, backward on odd ones, so drift in machine load cancels."""
    return tuple(systems) if repeat % 2 == 0 else tuple(systems)[::-1]


def summarize(results: list[RunResult]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for system in SYSTEMS:
        runs = [r for r in results if r.system == system]
        if not runs:
            continue
        summary[system] = {
            "wall_s": statistics.median(r.wall_seconds for r in runs),
            "train_s": statistics.median(r.train_seconds for r in runs),
            "train_tok_s": statistics.median(r.train_tokens_per_s for r in runs),
            "eval_tok_s": statistics.median(r.eval_tokens_per_s for r in runs),
            "train_padding": statistics.median(r.train_padding for r in runs),
            "eval_padding": statistics.median(r.eval_padding for r in runs),
            "dev_f1": statistics.fmean(r.dev_f1 for r in runs),
            "mfu": statistics.median(r.mfu for r in runs),
            "matmul_gflops": statistics.median(r.matmul_flops for r in runs) / 1e9,
        }
    return summary


def report(
    summary: dict[str, dict[str, float]],
    results: list[RunResult],
    long_ratios: dict[str, float] | None = None,
) -> str:
    lines = [
        f"{'system':<8} {'wall s':>8} {'train tok/s':>12} {'eval tok/s':>11} {'train pad':>10} "
        f"{'eval pad':>9} {'dev F1':>7} {'MFU':>6} {'matmul GFLOP/s':>15}"
    ]
    for system, s in summary.items():
        lines.append(
            f"{system:<8} {s['wall_s']:>8.1f} {s['train_tok_s']:>12.0f} {s['eval_tok_s']:>11.0f} "
            f"{s['train_padding']:>10.1%} {s['eval_padding']:>9.1%} {s['dev_f1']:>7.2f} {s['mfu']:>6.2f} "
            f"{s['matmul_gflops']:>15.0f}"
        )
    lines.append("(bf16: MFU over the bf16 matmul rate, which is its matmul column)")
    lines.append("per seed: " + "; ".join(f"{r.system} seed {r.seed} F1 {r.dev_f1:.2f}" for r in results))
    parts: list[str] = []
    bio, bf16, a, b = (summary.get(name) for name in SYSTEMS)
    if bio and a and b:
        ratios = {
            "train_speedup": bio["train_tok_s"] / a["train_tok_s"],
            "train_speedup_b": bio["train_tok_s"] / b["train_tok_s"],
            "eval_speedup": bio["eval_tok_s"] / a["eval_tok_s"],
            "eval_speedup_b": bio["eval_tok_s"] / b["eval_tok_s"],
            "wall_speedup": a["wall_s"] / bio["wall_s"],
            "wall_speedup_b": b["wall_s"] / bio["wall_s"],
        }
        lines.append("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
        parts.append(
            f"train_speedup={ratios['train_speedup']:.2f} train_speedup_b={ratios['train_speedup_b']:.2f} "
            f"eval_speedup={ratios['eval_speedup']:.2f} f1_delta={bio['dev_f1'] - a['dev_f1']:+.2f} "
            f"mfu={bio['mfu']:.2f}"
        )
    if bio and bf16:
        extra = f" bf16_vs_A={bf16['train_tok_s'] / a['train_tok_s']:.2f}" if a else ""
        lines.append(f"bf16 against fp32:{extra}")
        parts.append(
            f"bf16_speedup={bf16['train_tok_s'] / bio['train_tok_s']:.2f} "
            f"bf16_eval_speedup={bf16['eval_tok_s'] / bio['eval_tok_s']:.2f} "
            f"bf16_f1_delta={bf16['dev_f1'] - bio['dev_f1']:+.2f} bf16_mfu={bf16['mfu']:.2f}"
        )
    if long_ratios:
        parts.append(
            f"long_speedup={long_ratios['long_speedup']:.2f} "
            f"long_speedup_fp32={long_ratios['long_speedup_fp32']:.2f} "
            f"long_acc_delta={long_ratios['long_acc_delta']:+.2f}"
        )
    if parts:
        lines.append(" ".join(parts))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=2000, help="first N NCBI-disease train sentences")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="seeds 0..N-1, each system once per seed")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--data-dir", type=Path, default=None, help="the BLURB data folder")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated subset of biotune,bf16,A,B"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for every system (default: torch's own)"
    )
    parser.add_argument("--long", action=argparse.BooleanOptionalAction, default=True, help="PubMedQA at 512")
    parser.add_argument("--long-examples", type=int, default=None, help="first N PubMedQA train questions")
    parser.add_argument("--long-epochs", type=int, default=1)
    parser.add_argument("--long-repeats", type=int, default=2)
    parser.add_argument("--long-batch-size", type=int, default=16)
    parser.add_argument("--long-learning-rate", type=float, default=2e-5)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    logging.getLogger("biotune").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    settings = Settings(
        model=args.model,
        sentences=args.sentences,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_length=args.max_length,
        data_dir=args.data_dir,
    )
    chosen = [s for s in args.systems.split(",") if s]
    unknown = set(chosen) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown system(s) {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    splits = load_dataset(DATASET, args.data_dir, splits=("train", "dev"))
    train, dev = list(splits.train[: args.sentences]), list(splits.dev)
    shape = model_shape(AutoModelForTokenClassification.from_pretrained(resolve_model_path(args.model)))
    print(
        f"{DATASET}: {len(train)} train sentences, {len(dev)} dev; model {args.model} "
        f"({shape.non_embedding_parameters / 1e6:.2f}M non-embedding parameters); batch {args.batch_size}, "
        f"lr {args.learning_rate}, {args.epochs} epochs, max length {args.max_length}; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    results: list[RunResult] = []
    for repeat in range(args.repeats):
        for system in (s for s in order_for(repeat) if s in chosen):
            dtype = torch.bfloat16 if system == "bf16" else torch.float32
            before = matmul_flops_per_second(dtype=dtype)
            if system in PRECISION:
                result = run_biotune(settings, repeat, shape, system)
            else:
                result = run_trainer(system, settings, repeat, train, dev)
            # the machine's rate around the run: other processes' load comes and goes
            rate = (before + matmul_flops_per_second(dtype=dtype)) / 2
            result.matmul_flops = rate
            results.append(result)
            print(
                f"  {system:<7} seed {repeat}: wall {result.wall_seconds:6.1f}s, train "
                f"{result.train_tokens_per_s:5.0f} tok/s ({result.train_padding:.1%} padding), eval "
                f"{result.eval_tokens_per_s:5.0f} tok/s ({result.eval_padding:.1%} padding, "
                f"{result.evaluations} passes), dev F1 {result.dev_f1:.2f}, MFU {result.mfu:.2f} "
                f"({'bf16' if system == 'bf16' else 'fp32'} matmul {rate / 1e9:.0f} GFLOP/s)",
                flush=True,
            )
    long_results: list[LongResult] = []
    long_ratios = None
    if args.long:
        long_settings = LongSettings(
            model=args.model,
            examples=args.long_examples,
            epochs=args.long_epochs,
            batch_size=args.long_batch_size,
            learning_rate=args.long_learning_rate,
            warmup_ratio=args.warmup_ratio,
            weight_decay=args.weight_decay,
            max_length=512,
            data_dir=args.data_dir,
        )
        long_results, long_ratios = run_long_case(long_settings, args.long_repeats)
    if args.json:
        figures = {"ncbi": [asdict(r) for r in results], "long": [asdict(r) for r in long_results]}
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(report(summarize(results), results, long_ratios), flush=True)


if __name__ == "__main__":
    main()
