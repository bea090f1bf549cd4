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
from biotune.models import BIOTUNE_MODEL_FILE, HEAD_FILE, MODEL_ALIASES
from biotune.run_folder import RESULTS_FILE, read_results, seed_model_folder
from biotune.tasks import Head, Task, get_head, task_class
from biotune.tasks.placeholders import PLACEHOLDER_PATTERN

CARD_FILE = "README.md"
FOLDER_PLACEHOLDER = "path/to/this/folder"
ALIAS_HUB_IDS = {"minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    seed: int
    source: Path
    selected_as_best: bool


def export_model(
    run_dir: Path | str, to: Path | str, seed: Seed = "best", overwrite: bool = False
) -> ExportResult:
    """Copy one seed's model out of a run folder and write its model card."""
    run_dir, to = Path(run_dir).expanduser(), Path(to).expanduser()
    if not (run_dir / RESULTS_FILE).is_file():
        hint = (
            " (this is a model folder; give the run folder above it)"
            if (run_dir / BIOTUNE_MODEL_FILE).is_file()
            else ""
        )
        raise ConfigError(
            f"{run_dir}: not a run folder (no {RESULTS_FILE}){hint}: export reads the run's per-seed "
            "scores for the model card; give the folder `biotune train` wrote"
        )
    chosen = select_seed(run_dir, seed)
    source = seed_model_folder(run_dir, chosen)
    _prepare_target(to, source, overwrite)
    shutil.copytree(source, to, dirs_exist_ok=True)
    results = read_results(run_dir)
    card = json.loads((source / BIOTUNE_MODEL_FILE).read_text(encoding="utf-8"))
    selected_as_best = parse_seed(seed) is None
    (to / CARD_FILE).write_text(
        model_card(results, card, chosen, placeholders_of(source), selected_as_best), encoding="utf-8"
    )
    return ExportResult(to, chosen, source, selected_as_best)


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
    results: dict[str, Any], card: dict[str, Any], seed: int, placeholders: list[str], selected_as_best: bool
) -> str:
    config = results.get("config") or card.get("config") or {}
    task, head = task_class(card["task_type"]), get_head(card["head"])
    name = results.get("dataset") or card.get("dataset") or "custom"
    dataset = name if config.get("dataset") else f"own files ({name})"
    base = _base_model(str(config.get("model", results.get("model", "?"))))
    mean = card.get("pooling") == "mean" and head.pooled
    siamese = card.get("pair_encoding") == "siamese"
    lines = _front_matter(name, head, base)
    lines += [
        f"# {dataset}: {task.description}",
        "",
        f"Fine-tuned from `{base}` on **{dataset}** with biotune "
        f"{(card.get('versions') or {}).get('biotune', '')}. This folder is **seed {seed}** of a "
        f"{len(results['seeds'])}-seed run, "
        + (
            "chosen as the successful seed with the best dev score."
            if selected_as_best
            else "chosen by hand."
        )
        + " Every seed of the run, failed ones included, is listed under Results.",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value} |" for name, value in _settings(dataset, results, card, config, base)]
    lines += ["", *_results_section(results, seed, task), ""]
    lines += _labels_section(card, head, placeholders)
    lines += _biotune_usage(task, placeholders)
    lines += (
        _siamese_usage(card, task) if siamese else _transformers_usage(card, task, head, placeholders, mean)
    )
    lines += ["## Versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in (card.get("versions") or results.get("versions") or {}).items()]
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
    dataset: str, results: dict[str, Any], card: dict[str, Any], config: dict[str, Any], base: str
) -> list[tuple[str, Any]]:
    techniques = ", ".join(config.get("techniques") or []) or "standard fine-tuning"
    rows: list[tuple[str, Any]] = [
        ("base model", f"`{base}`"),
        ("dataset", dataset),
        ("task type", f"{card['task_type']} (head: {card['head']}, pooling: {card.get('pooling') or 'cls'})"),
        ("stability technique(s)", f"{techniques} ({results.get('technique_label', 'standard')})"),
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


def _results_section(results: dict[str, Any], seed: int, task: type[Task]) -> list[str]:
    from biotune.data.registry import get_spec

    config = results.get("config") or {}
    metric = get_spec(results["dataset"]).metric if config.get("dataset") else task.metric_name
    lines = [
        "## Results",
        "",
        f"Metric: {metric}, in percent (dev selects the checkpoint; test is held out).",
        "",
        "| seed | status | best epoch | dev | test | note |",
        "|---|---|---|---|---|---|",
    ]
    for record in results["seeds"]:
        marker = " **(this model)**" if record["seed"] == seed else ""
        dev, test = (_fmt((record.get(split) or {}).get("score")) for split in ("dev", "test"))
        lines.append(
            f"| {record['seed']}{marker} | {record['status']} | {record.get('best_epoch') or '-'} | "
            f"{dev} | {test} | {(record.get('error') or '').replace('|', '/')} |"
        )
    lines.append("")
    for key in ("summary_dev", "summary"):
        summary = results.get(key)
        if not summary or (key == "summary" and summary.get("split") == "dev"):
            continue
        total = summary["n_ok"] + summary["failed"]
        if summary["mean"] is None:
            lines.append(f"- {summary['split']}: no successful seed; {summary['failed']} of {total} failed.")
        else:
            mean, std, low, high = (_fmt(summary[key]) for key in ("mean", "std", "min", "max"))
            lines.append(
                f"- {summary['split']}: mean {mean} ± {std} (sample std) over {summary['n_ok']} successful "
                f"seed(s), min {low}, max {high}; failed runs: {summary['failed']} of {total}."
            )
    baseline = results.get("baseline") or {}
    parts = [
        f"trivial {split} {_fmt(m.get('score'))}" for split, m in (baseline.get("trivial") or {}).items()
    ]
    parts += [
        f"zero-shot cosine {split} {_fmt(m.get('score'))}"
        for split, m in (baseline.get("zero_shot_cosine") or {}).items()
    ]
    if parts:
        lines.append(f"- baselines: {', '.join(parts)}.")
    lines += [
        "",
        "A failed seed ended no better than the trivial baseline or diverged; it counts in the "
        "failure rate and stays out of the mean.",
    ]
    return lines


def _labels_section(card: dict[str, Any], head: Head, placeholders: list[str]) -> list[str]:
    lines = ["## Labels", "", head.card_labels(card["labels"])]
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
    card: dict[str, Any], task: type[Task], head: Head, placeholders: list[str], mean: bool
) -> list[str]:
    example = task.card_example(placeholders)
    code = head.transformers_snippet(
        card["max_length"],
        card["labels"],
        example,
        task.snippet_truncation,
        mean,
        FOLDER_PLACEHOLDER,
        HEAD_FILE,
    )
    lines = ["## Use it without biotune (transformers only)", "", "```python", code.rstrip("\n"), "```", ""]
    lines += head.snippet_notes(card["max_length"])
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


def _siamese_usage(card: dict[str, Any], task: type[Task]) -> list[str]:
    """Siamese similarity: each sentence encoded alone, mean-pooled, cosine, then learnt scale and shift."""
    code = f'''import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

folder = "{FOLDER_PLACEHOLDER}"  # or the Hub id it was uploaded to
tokenizer = AutoTokenizer.from_pretrained(folder)
encoder = AutoModel.from_pretrained(folder).eval()
head = load_file(f"{{folder}}/{HEAD_FILE}")  # scale and shift of the cosine


def embed(text: str) -> torch.Tensor:
    encoding = tokenizer(text, truncation=True, max_length={card["max_length"]}, return_tensors="pt")
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
