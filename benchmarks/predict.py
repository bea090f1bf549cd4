"""Predict speed (issue 17, item 6): `biotune predict` with torch and with the ONNX export (fp32, int8)
against `transformers.pipeline("token-classification")` on the same exported model.

One run:
  1. trains a NER model (default: minilm-l6 on NCBI-disease, 1 epoch, fp32, seed 0) with biotune's own
     training and records its dev and test entity F1, so the timed model is a real one;
  2. exports it with `biotune.export.export_model` three times: the Hugging Face folder, `--format onnx`
     (fp32) and `--format onnx --quantize int8` (onnxruntime dynamic quantization);
  3. reads the first `--abstracts` HoC test abstracts with biotune's HoC reader (an abstract is its
     sentences joined, as `LabeledDocument.text` gives it: whole abstracts of mixed lengths, some longer
     than 512 sub-tokens) and times four systems on the same texts.

The systems (`--threads` threads each, default: the machine's cores; torch.set_num_threads for torch and
the pipeline, onnxruntime's intra-op threads for ONNX; the Rust tokenizer's own thread pool is off,
TOKENIZERS_PARALLELISM=false, so no system computes on more threads than the others):
  torch      biotune.load(hf folder, backend="torch").predict(texts): biotune splits each abstract into
             sentences (biotune.textsplit), windows a sentence longer than the max length, and tags them
             in length-sorted, token-budget batches.
  onnx-fp32  the same Predictor running model.onnx under onnxruntime.
  onnx-int8  the same with the int8 model.onnx.
  pipeline   transformers.pipeline("token-classification", model=hf folder, aggregation_strategy="first",
             batch_size=32) on the same abstracts cut into the same sentences (biotune.textsplit, the rule
             the model card's pipeline snippet follows), entity offsets mapped back into the abstract. The
             pipeline would cut an input at the tokenizer's max length; `stride` makes it tag a longer
             sentence in overlapping windows instead, as biotune does, so no system drops text.
Each system predicts the first `--warmup` abstracts once before it is timed; then the systems take turns
(`--repeats` passes, the order reversed on every other pass, so drift in the host's load falls on all of
them) and each system's figure is its median pass. Real tokens are counted once: the tokenizer's tokens of
each abstract, no special tokens, no padding. Rates: abstracts/s and real tokens/s of a whole pass.

Entity agreement: entity-level F1 (percent) of one system's entities against another's, an entity being
(abstract, start character, end character, label) matched exactly: int8 against fp32 (the quantization's
cost), and, as sanity checks, ONNX fp32 and the pipeline against biotune torch.

Targets on the 2-core machine: torch at least 2x the pipeline; int8 at least 3x the pipeline with agreement
of at least 98 against fp32. The figures go to `--output` (default benchmarks/results/predict/):
results.json (settings, environment with versions, cores and the dense fp32 matmul rate measured before
and after the timed passes, the model's scores, the texts, every pass, rates, ratios, agreements) and
output.txt (what was printed). The last line is machine-readable:

  predict_speedup=<torch vs pipeline> onnx_speedup=<fp32> int8_speedup=<int8> int8_agreement=<pct>

Full run (about 6-8 minutes on 2 quiet cores: training about 2.5, exports about 1, timing about 3):
  python benchmarks/predict.py
Dry run (a tiny random encoder, a few texts, under a minute; the test suite runs it):
  python benchmarks/predict.py --tiny --output /tmp/predict-tiny
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the pipeline's own threads stay torch's

import onnxruntime  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import pipeline  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from biotune.config import TrainConfig  # noqa: E402
from biotune.data.loading import load_dataset  # noqa: E402
from biotune.device import inference_recipe  # noqa: E402
from biotune.export import export_model  # noqa: E402
from biotune.models import load_saved_card, load_saved_tokenizer  # noqa: E402
from biotune.onnx_model import ONNX_FILE, OnnxModel  # noqa: E402
from biotune.predict import Predictor  # noqa: E402
from biotune.runs import run_training  # noqa: E402
from biotune.textsplit import split_sentences, split_words  # noqa: E402
from gpu_check import build_encoder  # noqa: E402
from throughput import matmul_flops_per_second  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "predict"
TEXTS_DATASET = "HoC"
SYSTEMS = ("torch", "onnx-fp32", "onnx-int8", "pipeline")
PIPELINE_BATCH_SIZE = 32
TINY_MODEL = "tiny random BERT (2 layers, hidden 32; minilm-l6's tokenizer)"
TARGETS = {"predict_speedup": 2.0, "int8_speedup": 3.0, "int8_agreement": 98.0}

Entity = tuple[int, int, int, str]  # abstract index, start character, end character, label


# --- what is compared ---------------------------------------------------------------------------------


def entity_agreement(reference: set[Entity], other: set[Entity]) -> float:
    """Entity-level F1 in percent of `other` against `reference`: an entity counts only with the same
    abstract, span and label. 2|A & B| / (|A| + |B|) is the F1 of precision |A & B|/|B| and recall
    |A & B|/|A|; two empty sets agree completely."""
    if not reference and not other:
        return 100.0
    return 200.0 * len(reference & other) / (len(reference) + len(other))


def row_entities(rows: Sequence[dict[str, Any]]) -> set[Entity]:
    """biotune predict's rows -> entities."""
    return {
        (index, entity["start"], entity["end"], entity["label"])
        for index, row in enumerate(rows)
        for entity in row["entities"]
    }


@dataclass(frozen=True)
class Sentence:
    """One sentence of an abstract, as the pipeline gets it: its text and where it starts."""

    abstract: int
    offset: int
    text: str


def sentences_of(texts: Sequence[str]) -> list[Sentence]:
    """Each abstract cut into sentences by biotune's rule (biotune.textsplit), as predict cuts it."""
    pieces: list[Sentence] = []
    for index, text in enumerate(texts):
        words = split_words(text)
        for first, end in split_sentences(text, words):
            start = words[first].start
            pieces.append(Sentence(index, start, text[start : words[end - 1].end]))
    return pieces


def pipeline_entities(pieces: Sequence[Sentence], outputs: Sequence[Sequence[dict[str, Any]]]) -> set[Entity]:
    """The pipeline's entities of each sentence, offsets moved into the whole abstract."""
    return {
        (
            piece.abstract,
            piece.offset + int(entity["start"]),
            piece.offset + int(entity["end"]),
            entity["entity_group"],
        )
        for piece, found in zip(pieces, outputs, strict=True)
        for entity in found
    }


# --- the model ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    model: str
    dataset: str
    epochs: int
    precision: str
    batch_size: int
    learning_rate: float
    limit_train: int | None
    data_dir: Path | None


@dataclass
class Exports:
    hf: Path
    onnx_fp32: Path
    onnx_int8: Path
    training: dict[str, Any] = field(default_factory=dict)
    onnx: dict[str, Any] = field(default_factory=dict)


def train_and_export(settings: Settings, folder: Path, allow_failed: bool = False) -> Exports:
    """One seed trained by biotune, then the three exports of it. A failed seed (no better than the
    trivial baseline, or diverged) stops the run unless `allow_failed` (the dry run's random encoder)."""
    config = TrainConfig(
        dataset=settings.dataset,
        data_dir=settings.data_dir,
        model=settings.model,
        seeds=[0],
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        limit_train=settings.limit_train,
        device="cpu",
        precision=settings.precision,
    )
    started = time.perf_counter()
    results = run_training(config, folder / "run")
    (record,) = results.seeds
    if record.status != "ok" and not allow_failed:
        # a collapsed or diverged model tags nothing worth timing; say so rather than time it
        raise SystemExit(f"training failed ({record.status}: {record.error}); nothing to time")
    dev_f1 = record.score("dev")
    training = {
        "dataset": results.dataset,
        "model": settings.model,
        "epochs": settings.epochs,
        "precision": results.config["precision"],
        "train_sentences": results.featurization["train"].examples,
        "max_length": results.config["max_length"],
        "status": record.status,
        "dev_f1": float("nan") if dev_f1 is None else dev_f1,
        "test_f1": record.score("test"),
        "train_seconds": record.train_seconds,
        "wall_seconds": time.perf_counter() - started,
    }
    hf = export_model(folder / "run", folder / "hf", seed=0).folder
    onnx: dict[str, Any] = {}
    targets: dict[str, Path] = {}
    for name, quantize in (("fp32", None), ("int8", "int8")):
        export_started = time.perf_counter()
        exported = export_model(
            folder / "run", folder / f"onnx-{name}", seed=0, export_format="onnx", quantize=quantize
        )
        assert exported.onnx is not None
        targets[name] = exported.folder
        onnx[name] = {
            "max_difference_from_torch": exported.onnx.max_difference,
            "file_mb": exported.onnx.path.stat().st_size / 2**20,
            "export_seconds": time.perf_counter() - export_started,
        }
    return Exports(hf, targets["fp32"], targets["int8"], training, onnx)


# --- the systems ---------------------------------------------------------------------------------------


@dataclass
class System:
    """One way to tag the abstracts: `predict` is what is timed, `entities` reads its output."""

    name: str
    predict: Callable[[list[str]], Any]
    entities: Callable[[Any], set[Entity]]


def biotune_system(name: str, predictor: Predictor) -> System:
    return System(name, predictor.predict, row_entities)


def onnx_predictor(folder: Path, threads: int, batch_size: int) -> Predictor:
    """`Predictor.from_folder(folder, backend="onnx")`, built by hand so the onnxruntime session gets
    the same thread count as torch (from_folder leaves it to onnxruntime's default)."""
    return Predictor(
        OnnxModel(folder / ONNX_FILE, threads=threads),
        load_saved_tokenizer(folder),
        load_saved_card(folder),
        folder,
        inference_recipe("cpu", "fp32"),
        batch_size,
    )


def pipeline_system(folder: Path) -> System:
    max_length = load_saved_card(folder).max_length
    ner = pipeline(
        "token-classification",
        model=str(folder),
        aggregation_strategy="first",
        batch_size=PIPELINE_BATCH_SIZE,
        device="cpu",
        stride=max_length // 4,  # only a sentence longer than the max length is cut into windows
    )

    def predict(texts: list[str]) -> tuple[list[Sentence], list[Any]]:
        pieces = sentences_of(texts)
        return pieces, ner([piece.text for piece in pieces])

    return System("pipeline", predict, lambda output: pipeline_entities(*output))


def build_systems(exports: Exports, threads: int, batch_size: int) -> list[System]:
    torch_predictor = Predictor.from_folder(exports.hf, device="cpu", batch_size=batch_size, backend="torch")
    return [
        biotune_system("torch", torch_predictor),
        biotune_system("onnx-fp32", onnx_predictor(exports.onnx_fp32, threads, batch_size)),
        biotune_system("onnx-int8", onnx_predictor(exports.onnx_int8, threads, batch_size)),
        pipeline_system(exports.hf),
    ]


# --- the texts -----------------------------------------------------------------------------------------


def hoc_abstracts(data_dir: Path | None, count: int) -> list[str]:
    """The first `count` HoC test abstracts as biotune reads them (sentences joined by spaces)."""
    documents = load_dataset(TEXTS_DATASET, data_dir, splits=("test",)).test
    if len(documents) < count:
        raise SystemExit(f"--abstracts {count}: the HoC test split has only {len(documents)} abstracts")
    return [document.text for document in documents[:count]]


def describe_texts(texts: Sequence[str], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Real tokens (the tokenizer's, no special tokens, no padding) and how the lengths are spread."""
    lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    pieces = sentences_of(texts)
    sentence_lengths = [
        len(ids) for ids in tokenizer([p.text for p in pieces], add_special_tokens=False)["input_ids"]
    ]
    return {
        "abstracts": len(texts),
        "real_tokens": sum(lengths),
        "tokens_min": min(lengths),
        "tokens_median": statistics.median(lengths),
        "tokens_max": max(lengths),
        "abstracts_over_512_tokens": sum(n > 510 for n in lengths),  # 512 with [CLS] and [SEP]
        "sentences": len(pieces),
        "sentences_over_max_length": sum(n > max_length - 2 for n in sentence_lengths),
        "characters": sum(len(text) for text in texts),
    }


# --- the run -------------------------------------------------------------------------------------------


def order_for(repeat: int) -> tuple[str, ...]:
    """Forward on even passes, backward on odd ones, so drift in the host's load falls on every system."""
    return SYSTEMS if repeat % 2 == 0 else SYSTEMS[::-1]


def time_systems(
    systems: Sequence[System], texts: list[str], warmup: int, repeats: int, say: Callable[[str], None]
) -> tuple[dict[str, list[float]], dict[str, set[Entity]]]:
    by_name = {system.name: system for system in systems}
    if warmup:
        for system in systems:
            system.predict(texts[:warmup])
    seconds: dict[str, list[float]] = {name: [] for name in by_name}
    entities: dict[str, set[Entity]] = {}
    for repeat in range(repeats):
        for name in order_for(repeat):
            started = time.perf_counter()
            output = by_name[name].predict(texts)
            elapsed = time.perf_counter() - started
            seconds[name].append(elapsed)
            found = by_name[name].entities(output)
            if name in entities and found != entities[name]:
                say(f"  note: {name} gave other entities on pass {repeat} than on pass 0")
            entities.setdefault(name, found)
            say(f"  pass {repeat} {name:<9} {elapsed:7.2f} s  ({len(found)} entities)")
    return seconds, entities


def summarize(
    seconds: dict[str, list[float]], entities: dict[str, set[Entity]], texts: dict[str, Any]
) -> dict[str, Any]:
    rates: dict[str, dict[str, float]] = {}
    for name in SYSTEMS:
        median = statistics.median(seconds[name])
        rates[name] = {
            "seconds": median,
            "abstracts_per_s": texts["abstracts"] / median,
            "tokens_per_s": texts["real_tokens"] / median,
            "entities": len(entities[name]),
        }
    pipeline_rate = rates["pipeline"]["tokens_per_s"]
    ratios = {
        "predict_speedup": rates["torch"]["tokens_per_s"] / pipeline_rate,
        "onnx_speedup": rates["onnx-fp32"]["tokens_per_s"] / pipeline_rate,
        "int8_speedup": rates["onnx-int8"]["tokens_per_s"] / pipeline_rate,
        "int8_vs_fp32": rates["onnx-int8"]["tokens_per_s"] / rates["onnx-fp32"]["tokens_per_s"],
        "onnx_vs_torch": rates["onnx-fp32"]["tokens_per_s"] / rates["torch"]["tokens_per_s"],
    }
    agreement = {
        "int8_vs_fp32": entity_agreement(entities["onnx-fp32"], entities["onnx-int8"]),
        "fp32_vs_torch": entity_agreement(entities["torch"], entities["onnx-fp32"]),
        "pipeline_vs_torch": entity_agreement(entities["torch"], entities["pipeline"]),
    }
    met = {
        "predict_speedup": ratios["predict_speedup"] >= TARGETS["predict_speedup"],
        "int8_speedup": ratios["int8_speedup"] >= TARGETS["int8_speedup"],
        "int8_agreement": agreement["int8_vs_fp32"] >= TARGETS["int8_agreement"],
    }
    return {"rates": rates, "ratios": ratios, "agreement": agreement, "targets": TARGETS, "targets_met": met}


def report(summary: dict[str, Any]) -> list[str]:
    rates, ratios, agreement, met = (summary[key] for key in ("rates", "ratios", "agreement", "targets_met"))
    lines = [
        f"{'system':<10} {'seconds':>8} {'abstracts/s':>12} {'tokens/s':>9} {'vs pipeline':>12} "
        f"{'entities':>9}"
    ]
    for name, row in rates.items():
        lines.append(
            f"{name:<10} {row['seconds']:>8.2f} {row['abstracts_per_s']:>12.2f} {row['tokens_per_s']:>9.0f} "
            f"{row['tokens_per_s'] / rates['pipeline']['tokens_per_s']:>11.2f}x {row['entities']:>9}"
        )
    lines.append(
        f"entity agreement (F1): int8 vs fp32 {agreement['int8_vs_fp32']:.2f}, fp32 vs torch "
        f"{agreement['fp32_vs_torch']:.2f}, pipeline vs torch {agreement['pipeline_vs_torch']:.2f}"
    )
    verdict = {key: "met" if value else "MISSED" for key, value in met.items()}
    lines.append(
        f"targets: torch >= {TARGETS['predict_speedup']:g}x pipeline {verdict['predict_speedup']}; "
        f"int8 >= {TARGETS['int8_speedup']:g}x pipeline {verdict['int8_speedup']}; "
        f"int8 agreement >= {TARGETS['int8_agreement']:g} {verdict['int8_agreement']}"
    )
    lines.append(
        f"predict_speedup={ratios['predict_speedup']:.2f} onnx_speedup={ratios['onnx_speedup']:.2f} "
        f"int8_speedup={ratios['int8_speedup']:.2f} int8_agreement={agreement['int8_vs_fp32']:.2f}"
    )
    return lines


def environment(threads: int) -> dict[str, Any]:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cores": os.cpu_count(),
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--abstracts", type=int, default=200, help="the first N HoC test abstracts")
    parser.add_argument("--dataset", default="NCBI-disease", help="the NER dataset the model is trained on")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="training, and so torch predict"
    )
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--limit-train", type=int, default=None, help="first N train sentences")
    parser.add_argument("--batch-size", type=int, default=32, help="biotune predict's inputs per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per system (the median counts)")
    parser.add_argument("--warmup", type=int, default=16, help="abstracts each system predicts before timing")
    parser.add_argument("--threads", type=int, default=None, help="threads for every system (default: cores)")
    parser.add_argument("--data-dir", type=Path, default=None, help="the BLURB data folder")
    parser.add_argument(
        "--output", type=Path, default=None, help=f"default {DEFAULT_OUTPUT} (--tiny: a temp folder)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="dry run: a tiny random encoder, 16 train sentences, 6 abstracts"
    )
    args = parser.parse_args(argv)
    for flag in ("abstracts", "epochs", "repeats", "batch_size", "train_batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.warmup < 0 or (args.threads is not None and args.threads < 1) or (args.limit_train or 1) < 1:
        parser.error("--warmup must be at least 0, --threads and --limit-train at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.tiny:
        args.abstracts, args.repeats, args.warmup = min(args.abstracts, 6), 1, min(args.warmup, 2)
        args.limit_train = args.limit_train or 16
    threads = args.threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    logging.getLogger("biotune").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    printed: list[str] = []

    def say(line: str) -> None:
        printed.append(line)
        print(line, flush=True)

    output = args.output or (Path(tempfile.mkdtemp(prefix="predict-tiny-")) if args.tiny else DEFAULT_OUTPUT)
    say(f"figures to {output}")
    matmul_seconds = 0.2 if args.tiny else 3.0
    with tempfile.TemporaryDirectory(prefix="biotune-predict-bench-") as scratch:
        folder = Path(scratch)
        model = str(build_encoder(folder / "tiny-encoder", tiny=True)) if args.tiny else args.model
        settings = Settings(
            model=model,
            dataset=args.dataset,
            epochs=args.epochs,
            precision=args.precision,
            batch_size=args.train_batch_size,
            learning_rate=args.learning_rate,
            limit_train=args.limit_train,
            data_dir=args.data_dir,
        )
        say(
            f"training {args.model if not args.tiny else 'a tiny random encoder'} on {args.dataset}, "
            f"{args.epochs} epoch(s), {args.precision}; {threads} threads"
        )
        exports = train_and_export(settings, folder, allow_failed=args.tiny)
        training = exports.training
        if args.tiny:
            training["model"] = TINY_MODEL
        fp32, int8 = exports.onnx["fp32"], exports.onnx["int8"]
        say(
            f"  {training['train_sentences']} train sentences in {training['wall_seconds']:.0f} s: dev F1 "
            f"{training['dev_f1']:.2f}, test F1 {training['test_f1'] or float('nan'):.2f}; ONNX fp32 within "
            f"{fp32['max_difference_from_torch']:.1e} of torch, int8 {int8['max_difference_from_torch']:.2f} "
            f"({int8['file_mb']:.0f} MB against {fp32['file_mb']:.0f})"
        )
        texts = hoc_abstracts(args.data_dir, args.abstracts)
        tokenizer = load_saved_tokenizer(exports.hf)
        described = describe_texts(texts, tokenizer, int(training["max_length"]))
        say(
            f"{described['abstracts']} HoC test abstracts: {described['real_tokens']} real tokens "
            f"(per abstract {described['tokens_min']}-{described['tokens_max']}, median "
            f"{described['tokens_median']:.0f}; "
            f"{described['abstracts_over_512_tokens']} over 512), {described['sentences']} sentences "
            f"({described['sentences_over_max_length']} over the max length {training['max_length']})"
        )
        systems = build_systems(exports, threads, args.batch_size)
        matmul_before = matmul_flops_per_second(seconds=matmul_seconds)
        seconds, entities = time_systems(systems, texts, args.warmup, args.repeats, say)
        matmul_after = matmul_flops_per_second(seconds=matmul_seconds)
    say(f"dense fp32 matmul: {matmul_before / 1e9:.0f} GFLOP/s before, {matmul_after / 1e9:.0f} after")
    summary = summarize(seconds, entities, described)
    for line in report(summary):
        say(line)
    results = {
        "settings": {
            **{key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
            "pipeline_batch_size": PIPELINE_BATCH_SIZE,
        },
        "environment": {
            **environment(threads),
            "matmul_gflops_before": matmul_before / 1e9,
            "matmul_gflops_after": matmul_after / 1e9,
        },
        "training": training,
        "onnx": exports.onnx,
        "texts": described,
        "passes": seconds,
        **summary,
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (output / "output.txt").write_text("\n".join(printed) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
