"""`biotune export`: one seed of a run as a standard Hugging Face model folder with a model card (README.md).

The folder is the seed's saved model as `biotune train` wrote it: safetensors weights, config.json (label
names in id2label), tokenizer files (with any RE placeholder tokens), and biotune_model.json, so both plain
`transformers` and `biotune predict`/`biotune.load` read it. A CLS model loads with
`AutoModelFor{Token,Sequence}Classification.from_pretrained`; a mean-pooling model has no Hugging Face head
class, so it is the encoder (`AutoModel`) plus `head.safetensors`, and the card shows the few lines of torch
that pool and apply the head. The card's transformers snippet is written to run as it stands (the tests
execute it and compare it with `biotune predict`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biotune.api import Seed, parse_seed, select_seed
from biotune.errors import ConfigError
from biotune.formatting import std_text
from biotune.models import BIOTUNE_MODEL_FILE, HEAD_FILE, MODEL_ALIASES
from biotune.onnx_model import ONNX_FILE, QUANTIZATIONS, OnnxExport, export_onnx, require_onnxruntime
from biotune.run_folder import (
    RESULTS_FILE,
    ModelCard,
    RunResults,
    read_model_card,
    read_results,
    seed_model_folder,
)
from biotune.study.store import STORE_FILE
from biotune.tasks import Head, Task, get_head, task_class
from biotune.tasks.placeholders import PLACEHOLDER_PATTERN

CARD_FILE = "README.md"
FOLDER_PLACEHOLDER = "path/to/this/folder"
ALIAS_HUB_IDS = {"minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
EXPORT_FORMATS = ("hf", "onnx")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class StudyEvidence:
    """What a study says about the exported model: its setting's every seed, and the techniques beside it."""

    name: str
    best: Any  # biotune.report.tables.BestModel
    compared: list[Any]  # CellSummary of every technique of the same model x dataset, the best one included


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    seed: int
    source: Path
    selected_as_best: bool
    study: StudyEvidence | None = None
    onnx: OnnxExport | None = None


def export_model(
    run_dir: Path | str,
    to: Path | str,
    seed: Seed = "best",
    overwrite: bool = False,
    export_format: str = "hf",
    quantize: str | None = None,
    model: str | None = None,
    dataset: str | None = None,
) -> ExportResult:
    """Copy one seed's model out of a run folder (or a study's best model) and write its model card.

    export_format: `hf` (the Hugging Face folder) or `onnx` (the same folder plus model.onnx; quantize
    `int8` makes that model int8). model/dataset: in a study folder, which model x dataset's best model.
    """
    run_dir, to = Path(run_dir).expanduser(), Path(to).expanduser()
    if export_format not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if quantize is not None and export_format != "onnx":
        raise ConfigError("--quantize applies to --format onnx")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}; choose {', '.join(QUANTIZATIONS)}")
    if export_format == "onnx":
        require_onnxruntime()  # before any copying
    study = None
    if (run_dir / STORE_FILE).is_file():
        study = study_evidence(run_dir, seed, model, dataset)
        chosen = study.best.run.seed
        run_dir = run_dir / study.best.run.run_dir
    elif model is not None or dataset is not None:
        raise ConfigError(f"{run_dir}: --model and --dataset choose within a study folder ({STORE_FILE})")
    if not (run_dir / RESULTS_FILE).is_file():
        hint = (
            " (this is a model folder; give the run folder above it)"
            if (run_dir / BIOTUNE_MODEL_FILE).is_file()
            else ""
        )
        raise ConfigError(
            f"{run_dir}: not a run folder (no {RESULTS_FILE}) nor a study folder (no {STORE_FILE}){hint}: "
            "export reads the per-seed scores for the model card; give the folder `biotune train` or "
            "`biotune study` wrote"
        )
    if study is None:
        chosen = select_seed(run_dir, seed)
    source = seed_model_folder(run_dir, chosen)
    if not (source / BIOTUNE_MODEL_FILE).is_file():
        raise ConfigError(
            f"{source}: the study's best model was not kept (no {BIOTUNE_MODEL_FILE}); rerun the study "
            "with save_model on to export it"
        )
    _prepare_target(to, source, overwrite)
    shutil.copytree(source, to, dirs_exist_ok=True)
    results = read_results(run_dir)
    card = read_model_card(source)
    _hub_config(to, card)
    onnx = export_onnx(to, quantize) if export_format == "onnx" else None
    if onnx is not None:
        card = read_model_card(to)
    selected_as_best = study is not None or parse_seed(seed) is None
    (to / CARD_FILE).write_text(
        model_card(results, card, chosen, placeholders_of(source), selected_as_best, study), encoding="utf-8"
    )
    return ExportResult(to, chosen, source, selected_as_best, study, onnx)


def study_evidence(study_dir: Path, seed: Seed, model: str | None, dataset: str | None) -> StudyEvidence:
    """The study's best model for one model x dataset, picked by the report's rule (`best_models`)."""
    from biotune.report.tables import best_models, summarize_cells
    from biotune.study.store import StudyStore

    if parse_seed(seed) is not None:
        raise ConfigError(
            f"{study_dir}: --seed chooses among the seeds of a run folder; a study's model is its best "
            "(the report's rule). For another seed, export the run folder under runs/ it lives in"
        )
    with StudyStore(study_dir, read_only=True) as store:
        records = store.runs()
    cells = summarize_cells(records)
    bests = [
        b
        for b in best_models(cells)
        if (model is None or b.run.model == model) and (dataset is None or b.run.dataset == dataset)
    ]
    if not bests:
        asked = ", ".join(f"{k} {v!r}" for k, v in (("model", model), ("dataset", dataset)) if v) or "any"
        have = ", ".join(
            sorted({f"--model {b.run.model} --dataset {b.run.dataset}" for b in best_models(cells)})
        )
        raise ConfigError(
            f"{study_dir}: no finished run with a dev score for {asked}"
            + (f"; the study has: {have}" if have else "; let the study finish first")
        )
    if len(bests) > 1:
        choices = "; ".join(f"--model {b.run.model} --dataset {b.run.dataset}" for b in bests)
        raise ConfigError(f"{study_dir}: the study has {len(bests)} best models; choose one: {choices}")
    best = bests[0]
    compared = [c for c in cells if (c.model, c.dataset) == (best.run.model, best.run.dataset)]
    return StudyEvidence(study_dir.resolve().name, best, compared)


def _hub_config(folder: Path, card: ModelCard) -> None:
    """config.json's label names as `transformers.pipeline` shows them (typed entity tags), and the
    tokenizer's max length the one the model was trained with (the pipeline truncates there)."""
    from biotune.predict import entity_type_of

    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if "id2label" in config and card.labels:
        names = task_class(card.task_type).hub_labels(card.labels, entity_type_of(card))
        if len(names) == len(config["id2label"]):
            config["id2label"] = {str(i): name for i, name in enumerate(names)}
            config["label2id"] = {name: i for i, name in enumerate(names)}
            config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tokenizer_path = folder / "tokenizer_config.json"
    if tokenizer_path.is_file():
        settings = json.loads(tokenizer_path.read_text(encoding="utf-8"))
        settings["model_max_length"] = card.max_length
        tokenizer_path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _prepare_target(to: Path, source: Path, overwrite: bool) -> None:
    target, origin = to.resolve(), source.resolve()
    if target == origin or target in origin.parents or origin in target.parents:
        raise ConfigError(f"{to}: export to a folder outside the run's model folder")
    if to.exists() and not to.is_dir():
        raise ConfigError(f"{to}: exists and is not a folder")
    if to.is_dir() and any(to.iterdir()):
        if not overwrite:
            raise ConfigError(f"{to}: folder is not empty; choose a new folder or pass --overwrite")
        if not (to / BIOTUNE_MODEL_FILE).is_file():
            raise ConfigError(
                f"{to}: not an earlier biotune export (no {BIOTUNE_MODEL_FILE}); refusing to "
                "overwrite it, choose a new folder"
            )
        shutil.rmtree(to)  # stale files of another export (a head.safetensors) must not survive


def placeholders_of(folder: Path) -> list[str]:
    """RE placeholder tokens the folder's tokenizer was given (read from tokenizer.json, no model load)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return []
    added = json.loads(path.read_text(encoding="utf-8")).get("added_tokens", [])
    return sorted(t["content"] for t in added if PLACEHOLDER_PATTERN.fullmatch(t.get("content", "")))


# ---------------------------------------------------------------------------------------------- the card


def model_card(
    results: RunResults,
    card: ModelCard,
    seed: int,
    placeholders: list[str],
    selected_as_best: bool,
    study: StudyEvidence | None = None,
) -> str:
    config = results.config
    task, head = task_class(card.task_type), get_head(card.head)
    name = results.dataset
    dataset = f"own files ({name})" if results.own_files else name
    base = _base_model(str(config.get("model", results.model)))
    mean = card.pooling == "mean" and head.pooled
    siamese = card.pair_encoding == "siamese"
    lines = _front_matter(name, head, base)
    lines += [f"# {dataset}: {task.description}", ""]
    if study is None:
        lines += [
            f"Fine-tuned from `{base}` on **{dataset}** with biotune "
            f"{card.versions.get('biotune', '')}. This folder is **seed {seed}** of a "
            f"{len(results.seeds)}-seed run, "
            + (
                "chosen as the successful seed with the best dev score."
                if selected_as_best
                else "chosen by hand."
            )
            + " Every seed of the run, failed ones included, is listed under Results.",
            "",
        ]
    else:
        cell = study.best.cell
        lines += [
            f"Fine-tuned from `{base}` on **{dataset}** with biotune "
            f"{card.versions.get('biotune', '')}: the best model of the study "
            f"`{study.name}`. The study trained {len(study.compared)} technique(s) with "
            f"{len(cell.runs)} seed(s) per setting; this is technique **{cell.technique}** at the setting "
            "with the best mean dev score over its successful seeds (the study report's rule, so one lucky "
            f"seed of an unstable technique is not picked), and **seed {seed}**, that setting's best-dev "
            "seed. "
            "Every seed of the setting, failed ones included, and the other techniques are under Results.",
            "",
        ]
    lines += ["## Training", "", "| setting | value |", "|---|---|"]
    settings = _settings(dataset, results, card, config, base)
    if study is not None:  # the run folder holds one seed; the setting is all of them
        seeds = ", ".join(str(r.seed) for r in sorted(study.best.cell.runs, key=lambda r: r.seed))
        settings = [row for row in settings if row[0] != "seeds"] + [("seeds", seeds)]
    lines += [f"| {name} | {value} |" for name, value in settings]
    if study is None:
        lines += ["", *_results_section(results, seed, task), ""]
    else:
        lines += ["", *_study_results_section(results, seed, task, study), ""]
    lines += _labels_section(card, head, placeholders)
    lines += _biotune_usage(task, placeholders)
    lines += (
        _siamese_usage(card, task) if siamese else _transformers_usage(card, task, head, placeholders, mean)
    )
    if not (siamese or mean):
        lines += _pipeline_usage(card, task, head, placeholders)
    if card.onnx is not None:
        lines += _onnx_usage(card)
    lines += ["## Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in (card.versions or results.versions).items()]
    return "\n".join(lines) + "\n"


def _front_matter(dataset: str, head: Head, base: str) -> list[str]:
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {head.pipeline_tag}",
    ]
    if HUB_ID.match(base) and not Path(base).exists():
        lines.append(f"base_model: {base}")
    tag = re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")
    lines += ["tags:", "- biotune", "- biomedical", "- blurb", f"- {tag}", "---", ""]
    return lines


def _base_model(name: str) -> str:
    if name.lower() in MODEL_ALIASES:
        return ALIAS_HUB_IDS.get(name.lower(), name)
    return name


def _settings(
    dataset: str, results: RunResults, card: ModelCard, config: dict[str, Any], base: str
) -> list[tuple[str, Any]]:
    techniques = ", ".join(config.get("techniques") or []) or "standard fine-tuning"
    rows: list[tuple[str, Any]] = [
        ("base model", f"`{base}`"),
        ("dataset", dataset),
        ("task type", f"{card.task_type} (head: {card.head}, pooling: {card.pooling})"),
        ("stability technique(s)", f"{techniques} ({results.technique_label})"),
    ]
    for key, name in (
        ("learning_rate", "learning rate"),
        ("batch_size", "batch size"),
        ("epochs", "epochs"),
        ("warmup_ratio", "warmup ratio"),
        ("weight_decay", "weight decay"),
        ("max_length", "max length (sub-tokens)"),
        ("dropout", "dropout"),
        ("patience", "early stopping patience"),
        ("checkpoint", "checkpoint"),
        ("gradient_accumulation", "gradient accumulation"),
        ("max_grad_norm", "max grad norm"),
        ("limit_train", "training examples limit"),
        ("seeds", "seeds"),
    ):
        value = config.get(key)
        if value is not None:
            rows.append((name, ", ".join(map(str, value)) if isinstance(value, list) else value))
    return rows


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"


def _results_section(results: RunResults, seed: int, task: type[Task]) -> list[str]:
    metric = _metric_name(results, task)
    lines = [
        "## Results",
        "",
        f"Metric: {metric}, in percent (dev selects the checkpoint; test is held out).",
        "",
        "| seed | status | best epoch | dev | test | note |",
        "|---|---|---|---|---|---|",
    ]
    for record in results.seeds:
        marker = " **(this model)**" if record.seed == seed else ""
        dev, test = _fmt(record.score("dev")), _fmt(record.score("test"))
        lines.append(
            f"| {record.seed}{marker} | {record.status} | {record.best_epoch or '-'} | "
            f"{dev} | {test} | {(record.error or '').replace('|', '/')} |"
        )
    lines.append("")
    for summary in (results.summary_dev, results.summary):
        if summary is results.summary and summary.split == "dev":
            continue
        total = summary.n_ok + summary.failed
        if summary.mean is None:
            lines.append(f"- {summary.split}: no successful seed; {summary.failed} of {total} failed.")
        else:
            mean, low, high = _fmt(summary.mean), _fmt(summary.min), _fmt(summary.max)
            std = std_text(summary.std, summary.n_ok)
            lines.append(
                f"- {summary.split}: mean {mean} ± {std} (sample std) over {summary.n_ok} successful "
                f"seed(s), min {low}, max {high}; failed runs: {summary.failed} of {total}."
            )
    parts = [f"trivial {split} {_fmt(m.score)}" for split, m in results.baseline.trivial.items()]
    parts += [
        f"zero-shot cosine {split} {_fmt(m.score)}"
        for split, m in (results.baseline.zero_shot_cosine or {}).items()
    ]
    if parts:
        lines.append(f"- baselines: {', '.join(parts)}.")
    lines += [
        "",
        "A failed seed ended no better than the trivial baseline or diverged; it counts in the "
        "failure rate and stays out of the mean.",
    ]
    return lines


def _metric_name(results: RunResults, task: type[Task]) -> str:
    from biotune.data.registry import get_spec

    return task.metric_name if results.own_files else get_spec(results.dataset).metric


def _stats_text(stats: Any) -> str:
    return "-" if stats.mean is None else f"{_fmt(stats.mean)} ± {std_text(stats.std, stats.n)}"


def _study_results_section(
    results: RunResults, seed: int, task: type[Task], study: StudyEvidence
) -> list[str]:
    """The exported setting's every seed with mean ± std and failures, then the other techniques."""
    from biotune.study.grid import setting_text

    cell = study.best.cell
    lines = [
        "## Results",
        "",
        f"Metric: {_metric_name(results, task)}, in percent (dev selects the checkpoint; test is held out). "
        f"Study `{study.name}`, technique `{cell.technique}`, setting "
        f"{setting_text(cell.hyperparameters, cell.resolved)}.",
        "",
        "| seed | status | dev | test | note |",
        "|---|---|---|---|---|",
    ]
    for run in sorted(cell.runs, key=lambda r: r.seed):
        marker = " **(this model)**" if run.seed == seed else ""
        status = "error" if run.crashed else str(run.status)
        note = (run.error or "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(
            f"| {run.seed}{marker} | {status} | {_fmt(run.dev_score)} | {_fmt(run.test_score)} | {note} |"
        )
    lines += [
        "",
        f"- dev: mean {_stats_text(cell.dev)}, test: mean {_stats_text(cell.test)} (sample std) over the "
        f"{cell.finished} finished seed(s), failed ones included as in the study report; failed runs: "
        f"{cell.failed} of {cell.finished}"
        + (f"; {cell.crashed} raised an error (no score)" if cell.crashed else "")
        + (f"; {cell.pending} not finished" if cell.pending else "")
        + ".",
        "",
        "A failed seed ended no better than the trivial baseline or diverged: it counts in the mean, the std "
        "and the failure rate, since it is what fine-tuning this way can give.",
        "",
        f"### Techniques compared in `{study.name}` ({cell.model}, {cell.dataset})",
        "",
        "Each technique at its own best setting (mean dev over its successful seeds).",
        "",
        "| technique | setting | seeds | failed | dev mean ± std | test mean ± std |",
        "|---|---|---|---|---|---|",
    ]
    for other in study.compared:
        marker = " **(this model)**" if other.technique == cell.technique else ""
        lines.append(
            f"| {other.technique}{marker} | {setting_text(other.hyperparameters, other.resolved)} | "
            f"{other.finished} | {other.failed} | {_stats_text(other.dev)} | {_stats_text(other.test)} |"
        )
    return lines


def _labels_section(card: ModelCard, head: Head, placeholders: list[str]) -> list[str]:
    lines = ["## Labels", "", head.card_labels(card.labels)]
    if placeholders:
        names = ", ".join(f"`{p}`" for p in placeholders)
        lines.append(f"Entity placeholders (single tokens of the tokenizer): {names}.")
    return [*lines, ""]


def _biotune_usage(task: type[Task], placeholders: list[str]) -> list[str]:
    example = task.card_example(placeholders)
    if task.pair_fields is not None:
        row = json.dumps(dict(zip(task.pair_fields, example, strict=True)))
        cli = [f"echo '{row}' > inputs.jsonl", f"biotune predict {FOLDER_PLACEHOLDER} --input inputs.jsonl"]
        python_input = row
    else:
        example = example.replace(" .", ".")  # raw text: biotune splits the words itself
        cli = [
            f'biotune predict {FOLDER_PLACEHOLDER} --text "{example}"',
            f"biotune predict {FOLDER_PLACEHOLDER} --input texts.txt --output predictions.jsonl",
        ]
        python_input = json.dumps(example)
    lines = [
        "## Use it with biotune",
        "",
        "```bash",
        *cli,
        "```",
        "",
        "```python",
        "import biotune",
        "",
        f'predictor = biotune.load("{FOLDER_PLACEHOLDER}")',
        f"print(predictor.predict([{python_input}]))",
        "```",
        "",
    ]
    if task.card_note:
        lines += [task.card_note, ""]
    return lines


def _transformers_usage(
    card: ModelCard, task: type[Task], head: Head, placeholders: list[str], mean: bool
) -> list[str]:
    example = task.card_example(placeholders)
    code = head.transformers_snippet(
        card.max_length,
        card.labels,
        example,
        task.snippet_truncation,
        mean,
        FOLDER_PLACEHOLDER,
        HEAD_FILE,
    )
    lines = ["## Use it without biotune (transformers only)", "", "```python", code.rstrip("\n"), "```", ""]
    lines += head.snippet_notes(card.max_length)
    if mean:
        lines.append(
            "This model mean-pools: the Hugging Face classification classes would put a new, random head "
            f"on the encoder, so load it with `AutoModel` and apply `{HEAD_FILE}` as above "
            "(`transformers` may report the encoder's unused pooler as newly initialized). For a Hub id, "
            f"fetch `{HEAD_FILE}` with `huggingface_hub.hf_hub_download`."
        )
    if task.entity_placeholders:
        lines.append(
            "Mask the two entities with the placeholders listed under Labels, as in the training data."
        )
    return [*lines, ""]


def _pipeline_usage(card: ModelCard, task: type[Task], head: Head, placeholders: list[str]) -> list[str]:
    example = task.card_example(placeholders)
    code = head.pipeline_snippet(example, FOLDER_PLACEHOLDER, task.snippet_truncation)
    return [
        "## Use it with the transformers pipeline",
        "",
        "```python",
        code.rstrip("\n"),
        "```",
        "",
        *head.pipeline_notes(card.max_length),
        "",
    ]


def _onnx_usage(card: ModelCard) -> list[str]:
    onnx = card.onnx
    assert onnx is not None  # model_card asks only for a card that records one
    precision = "int8 (onnxruntime dynamic quantization)" if onnx.quantization == "int8" else "fp32"
    inputs = ", ".join(f"`{name}`" for name in onnx.inputs)
    return [
        "## ONNX",
        "",
        f"`{ONNX_FILE}` is the whole model ({precision}, opset {onnx.opset}, dynamic batch and sequence "
        f"axes): inputs {inputs} as the tokenizer makes them (int64), output `logits`. `biotune predict` "
        "and `biotune.load` run it with onnxruntime when it is here (`--backend torch` for the safetensors "
        "weights).",
        "",
        "```python",
        "import onnxruntime",
        "",
        f'session = onnxruntime.InferenceSession("{FOLDER_PLACEHOLDER}/{ONNX_FILE}")',
        "print([node.name for node in session.get_inputs()])",
        "```",
        "",
    ]


def _siamese_usage(card: ModelCard, task: type[Task]) -> list[str]:
    """Siamese similarity: each sentence encoded alone, mean-pooled, cosine, then learnt scale and shift."""
    code = f'''import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = "{FOLDER_PLACEHOLDER}"  # or the Hub id it was uploaded to
tokenizer = AutoTokenizer.from_pretrained(folder)
encoder = AutoModel.from_pretrained(folder).eval()
head = load_file(f"{{folder}}/{HEAD_FILE}")  # scale and shift of the cosine


def embed(text: str) -> torch.Tensor:
    encoding = tokenizer(text, truncation=True, max_length={card.max_length}, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**encoding).last_hidden_state
    mask = encoding["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return ((hidden * mask).sum(1) / mask.sum(1))[0]  # mean over the real tokens


def predict(first: str, second: str) -> float:
    cosine = torch.nn.functional.cosine_similarity(embed(first), embed(second), dim=0)
    return float(head["scale"][0] * cosine + head["shift"][0])


print(predict({task.card_example([])!r}[0], {task.card_example([])!r}[1]))
'''
    return [
        "## Use it without biotune (transformers only)",
        "",
        "```python",
        code.rstrip("\n"),
        "```",
        "",
        "This model is siamese: each sentence is encoded on its own and mean-pooled; the score is the cosine "
        f"of the two embeddings times `scale` plus `shift` (both in `{HEAD_FILE}`), on the 0-4 scale.",
        "",
    ]
