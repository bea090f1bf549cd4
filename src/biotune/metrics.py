"""BLURB metrics, scored exactly as BLURB scores them, and the BLURB score over the 13 datasets.

Every scorer takes gold and predicted in the examples' own units and returns a dict whose `score`
is the dataset's primary metric on a 0-100 scale; the other figures beside it (precision, recall,
F1, accuracy, per-class figures) use the same 0-100 scale, counts are plain ints, and `notes` lists
anything a reader must know (e.g. a constant prediction scored 0 instead of NaN).

Units per task type:
- ner, pico: per sentence, a sequence of tag strings (`B`/`I`/`O`, or `I-PAR`/`I-INT`/`I-OUT`/`O`);
- re, classification, qa: per example, the label string as in the files (`CPR:4`, `DDI-false`, `1`, `yes`);
- similarity: per pair, a float;
- multilabel: per document, the set of label indices (HoC: hallmarks 0-9).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from biotune.data.registry import KNOWN_NEGATIVE_LABELS, get_spec
from biotune.errors import BiotuneError, ConfigError, DataError
from biotune.run_folder import RESULTS_FILE, RunResults, read_file

PICO_CLASSES: tuple[str, ...] = ("I-PAR", "I-INT", "I-OUT")

# The benchmark's composition (Gu et al. 2021), in BLURB's order; names are the registry's canonical names.
BLURB_TYPES: tuple[str, ...] = ("NER", "PICO", "RE", "similarity", "classification", "QA")
BLURB_DATASETS: dict[str, tuple[str, ...]] = {
    "NER": ("BC5CDR-chem", "BC5CDR-disease", "NCBI-disease", "BC2GM", "JNLPBA"),
    "PICO": ("ebmnlp",),
    "RE": ("chemprot", "DDI", "GAD"),
    "similarity": ("BIOSSES",),
    "classification": ("HoC",),
    "QA": ("pubmedqa", "BioASQ"),
}
BLURB_TYPE_OF_DATASET: dict[str, str] = {
    name: kind for kind, names in BLURB_DATASETS.items() for name in names
}


class MetricInputError(BiotuneError, ValueError):
    """Gold and predicted cannot be scored together (lengths differ, empty, unknown tag...)."""


# ---------------------------------------------------------------------------------------------- validation


def _check_pairing(gold: Sequence[Any], predicted: Sequence[Any]) -> None:
    if len(gold) == 0 and len(predicted) == 0:
        raise MetricInputError("nothing to score: gold and predicted are both empty")
    if len(gold) != len(predicted):
        first_unpaired = min(len(gold), len(predicted))
        raise MetricInputError(
            f"gold has {len(gold)} items but predicted has {len(predicted)}: "
            f"item {first_unpaired} (0-based) has no partner"
        )


def _check_tag_sequences(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    _check_pairing(gold, predicted)
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        for side, tags in (("gold", gold_tags), ("predicted", predicted_tags)):
            if isinstance(tags, str) or not isinstance(tags, Sequence):
                raise MetricInputError(
                    f"{side} sentence {index} must be a list of tags, got {type(tags).__name__}"
                )
        if len(gold_tags) != len(predicted_tags):
            raise MetricInputError(
                f"sentence {index} (0-based): gold has {len(gold_tags)} tags, "
                f"predicted has {len(predicted_tags)}"
            )


def _as_label(value: Any, side: str, index: int) -> str:
    # GAD's labels are the strings "0"/"1" in the files; a model may hand back ints, which must match them.
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise MetricInputError(f"{side} item {index} must be a label string, got {value!r}")


def _as_labels(values: Sequence[Any], side: str) -> list[str]:
    return [_as_label(value, side, index) for index, value in enumerate(values)]


def _percent(value: float) -> float:
    return float(value) * 100.0


# ---------------------------------------------------------------------------------------------- NER


def _parse_tag(tag: str, index: int, position: int) -> tuple[str, str]:
    """(prefix, type) of a B/I/O tag; bare `B`/`I` are untyped (type '')."""
    if tag == "O" or tag in ("B", "I"):
        return tag, ""
    if isinstance(tag, str) and tag[:2] in ("B-", "I-") and len(tag) > 2:
        return tag[0], tag[2:]
    raise MetricInputError(
        f"sentence {index}, word {position}: tag {tag!r} is not a B/I/O tag (use B, I, O or B-TYPE, I-TYPE)"
    )


def entity_spans(tags: Sequence[str], sentence_index: int = 0) -> list[tuple[str, int, int]]:
    """Entities of one sentence as (type, first word, last word), with seqeval's default-mode semantics.

    An entity starts at `B`, or at an `I` that follows `O` or an entity of another type; it ends
    before `B`, `O` or a change of type. Bare `B`/`I` tags have type ''.
    """
    spans: list[tuple[str, int, int]] = []
    start = -1
    current_type = ""
    for position, tag in enumerate(tags):
        prefix, entity_type = _parse_tag(tag, sentence_index, position)
        if start >= 0 and (prefix != "I" or entity_type != current_type):
            spans.append((current_type, start, position - 1))
            start = -1
        if prefix == "B" or (prefix == "I" and start < 0):
            start = position
            current_type = entity_type
    if start >= 0:
        spans.append((current_type, start, len(tags) - 1))
    return spans


def _prf(true_positives: int, predicted_count: int, gold_count: int) -> tuple[float, float, float]:
    """Precision, recall, F1 (fractions) the way seqeval and sklearn compute them, 0 where undefined."""
    precision = true_positives / predicted_count if predicted_count else 0.0
    recall = true_positives / gold_count if gold_count else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def ner_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level micro P/R/F1 over all sentences; equals seqeval (default mode) with B->B-ENT, I->I-ENT."""
    _check_tag_sequences(gold, predicted)
    gold_entities: set[tuple[int, str, int, int]] = set()
    predicted_entities: set[tuple[int, str, int, int]] = set()
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        gold_entities.update((index, *span) for span in entity_spans(gold_tags, index))
        predicted_entities.update((index, *span) for span in entity_spans(predicted_tags, index))
    correct = gold_entities & predicted_entities
    precision, recall, f1 = _prf(len(correct), len(predicted_entities), len(gold_entities))
    result: dict[str, Any] = {
        "metric": "entity_f1",
        "score": _percent(f1),
        "precision": _percent(precision),
        "recall": _percent(recall),
        "f1": _percent(f1),
        "n": len(gold),
        "gold_entities": len(gold_entities),
        "predicted_entities": len(predicted_entities),
        "correct_entities": len(correct),
        "notes": [],
    }
    types = sorted({entity[1] for entity in gold_entities | predicted_entities})
    if types and types != [""]:
        result["per_class"] = {}
        for entity_type in types:
            gold_of_type = {e for e in gold_entities if e[1] == entity_type}
            predicted_of_type = {e for e in predicted_entities if e[1] == entity_type}
            p, r, f = _prf(len(gold_of_type & predicted_of_type), len(predicted_of_type), len(gold_of_type))
            result["per_class"][entity_type or "(untyped)"] = {
                "precision": _percent(p),
                "recall": _percent(r),
                "f1": _percent(f),
                "support": len(gold_of_type),
            }
    return result


# ---------------------------------------------------------------------------------------------- PICO


def pico_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Word-level F1 of each of P, I, O (I-PAR, I-INT, I-OUT) over all words, then their macro average."""
    _check_tag_sequences(gold, predicted)
    allowed = {"O", *PICO_CLASSES}
    for side, sentences in (("gold", gold), ("predicted", predicted)):
        for index, tags in enumerate(sentences):
            for position, tag in enumerate(tags):
                if tag not in allowed:
                    raise MetricInputError(
                        f"{side} sentence {index}, word {position}: tag {tag!r} is not one of "
                        f"{sorted(allowed)}"
                    )
    flat_gold = [tag for tags in gold for tag in tags]
    flat_predicted = [tag for tags in predicted for tag in tags]
    if not flat_gold:
        raise MetricInputError("nothing to score: every sentence is empty")
    per_class = _per_class(flat_gold, flat_predicted, list(PICO_CLASSES))
    macro = {
        key: float(np.mean([c[key] for c in per_class.values()])) for key in ("precision", "recall", "f1")
    }
    return {
        "metric": "macro_word_f1",
        "score": macro["f1"],
        **macro,
        "n": len(gold),
        "words": len(flat_gold),
        "per_class": per_class,
        "notes": [],
    }


# ---------------------------------------------------------------------------------------------- labels


def _per_class(gold: list[str], predicted: list[str], labels: list[str]) -> dict[str, dict[str, float]]:
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, average=None, zero_division=0
    )
    return {
        label: {
            "precision": _percent(precision[i]),
            "recall": _percent(recall[i]),
            "f1": _percent(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }


def infer_negative_label(gold: Iterable[str], predicted: Iterable[str]) -> str:
    """The one known negative label (`false`, `DDI-false`, `0`) present, else an error asking for it."""
    present = set(gold) | set(predicted)
    candidates = [label for label in KNOWN_NEGATIVE_LABELS if label in present]
    if len(candidates) != 1:
        raise MetricInputError(
            "relation extraction needs the negative (no-relation) label; pass negative_label= "
            f"(found {candidates or 'none'} of the known ones {list(KNOWN_NEGATIVE_LABELS)})"
        )
    return candidates[0]


def relation_scores(
    gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
) -> dict[str, Any]:
    """Micro P/R/F1 over every class but the negative one: a true positive needs pred == gold != negative."""
    _check_pairing(gold, predicted)
    gold_labels, predicted_labels = _as_labels(gold, "gold"), _as_labels(predicted, "predicted")
    negative = negative_label
    if negative is None:
        negative = infer_negative_label(gold_labels, predicted_labels)
    positive = sorted((set(gold_labels) | set(predicted_labels)) - {negative})
    notes: list[str] = []
    if positive:
        precision, recall, f1, _ = precision_recall_fscore_support(
            gold_labels, predicted_labels, labels=positive, average="micro", zero_division=0
        )
        per_class = _per_class(gold_labels, predicted_labels, positive)
    else:
        precision = recall = f1 = 0.0
        per_class = {}
        notes.append(f"neither gold nor predictions hold a label other than {negative!r}: scored 0")
    if positive and all(label == negative for label in predicted_labels):
        notes.append(f"every prediction is the negative label {negative!r}: scored 0")
    return {
        "metric": "micro_f1",
        "score": _percent(f1),
        "precision": _percent(precision),
        "recall": _percent(recall),
        "f1": _percent(f1),
        "n": len(gold_labels),
        "negative_label": negative,
        "per_class": per_class,
        "notes": notes,
    }


def classification_scores(gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, Any]:
    """Single-label classification and QA: accuracy as the score, macro F1 (over labels seen) beside it."""
    _check_pairing(gold, predicted)
    gold_labels, predicted_labels = _as_labels(gold, "gold"), _as_labels(predicted, "predicted")
    labels = sorted(set(gold_labels) | set(predicted_labels))
    accuracy = accuracy_score(gold_labels, predicted_labels)
    macro_f1 = f1_score(gold_labels, predicted_labels, labels=labels, average="macro", zero_division=0)
    return {
        "metric": "accuracy",
        "score": _percent(accuracy),
        "accuracy": _percent(accuracy),
        "macro_f1": _percent(macro_f1),
        "n": len(gold_labels),
        "per_class": _per_class(gold_labels, predicted_labels, labels),
        "notes": [],
    }


def qa_scores(gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, Any]:
    """PubMedQA / BioASQ: accuracy over answer strings (yes/no/maybe), macro F1 beside it."""
    return classification_scores(gold, predicted)


# ---------------------------------------------------------------------------------------------- HoC


def _as_index_set(value: Any, side: str, index: int) -> frozenset[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise MetricInputError(f"{side} document {index} must be a set of label indices, got {value!r}")
    indices = list(value)
    for item in indices:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)) or item < 0:
            raise MetricInputError(
                f"{side} document {index}: {item!r} is not a label index (give the set of indices, "
                "e.g. {0, 7}, not a 0/1 vector)"
            )
    return frozenset(int(item) for item in indices)


def multilabel_scores(gold: Sequence[Iterable[int]], predicted: Sequence[Iterable[int]]) -> dict[str, Any]:
    """HoC: micro P/R/F1 over all (document x label) cells of the multi-hot matrices."""
    _check_pairing(gold, predicted)
    gold_sets = [_as_index_set(value, "gold", i) for i, value in enumerate(gold)]
    predicted_sets = [_as_index_set(value, "predicted", i) for i, value in enumerate(predicted)]
    classes = sorted(set().union(*gold_sets, *predicted_sets))
    notes: list[str] = []
    per_class: dict[int, dict[str, float]] = {}
    if not classes:
        precision = recall = f1 = 0.0
        notes.append("no document has any label, in gold or predicted: scored 0")
    else:
        binarizer = MultiLabelBinarizer(classes=classes)
        gold_matrix = binarizer.fit_transform(gold_sets)
        predicted_matrix = binarizer.transform(predicted_sets)
        precision, recall, f1, _ = precision_recall_fscore_support(
            gold_matrix, predicted_matrix, average="micro", zero_division=0
        )
        by_class = precision_recall_fscore_support(
            gold_matrix, predicted_matrix, average=None, zero_division=0
        )
        per_class = {
            label: {
                "precision": _percent(by_class[0][i]),
                "recall": _percent(by_class[1][i]),
                "f1": _percent(by_class[2][i]),
                "support": int(by_class[3][i]),
            }
            for i, label in enumerate(classes)
        }
    return {
        "metric": "micro_f1",
        "score": _percent(f1),
        "precision": _percent(precision),
        "recall": _percent(recall),
        "f1": _percent(f1),
        "n": len(gold_sets),
        "per_class": per_class,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------- BIOSSES


def _as_floats(values: Sequence[Any], side: str) -> np.ndarray:
    array = np.empty(len(values), dtype=float)
    for index, value in enumerate(values):
        is_number = isinstance(value, (int, float, np.integer, np.floating))
        if isinstance(value, (bool, np.bool_)) or not is_number:
            raise MetricInputError(f"{side} item {index} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise MetricInputError(f"{side} item {index} is {value}: scores must be finite")
        array[index] = value
    return array


def similarity_scores(gold: Sequence[float], predicted: Sequence[float]) -> dict[str, Any]:
    """BIOSSES: Pearson x 100 as the score; Spearman and MSE beside it. Constant input scores 0, not NaN."""
    _check_pairing(gold, predicted)
    gold_values, predicted_values = _as_floats(gold, "gold"), _as_floats(predicted, "predicted")
    if len(gold_values) < 2:
        raise MetricInputError(f"a correlation needs at least 2 pairs, got {len(gold_values)}")
    notes: list[str] = []
    constant = [
        side
        for side, values in (("predicted", predicted_values), ("gold", gold_values))
        if np.ptp(values) == 0
    ]
    if constant:
        pearson = spearman = 0.0
        notes.append(f"{' and '.join(constant)} scores are constant: correlation is undefined, scored 0")
    else:
        pearson = float(pearsonr(gold_values, predicted_values)[0])
        spearman = float(spearmanr(gold_values, predicted_values)[0])
    return {
        "metric": "pearson",
        "score": _percent(pearson),
        "pearson": _percent(pearson),
        "spearman": _percent(spearman),
        "mse": float(np.mean((gold_values - predicted_values) ** 2)),
        "n": len(gold_values),
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------- dispatch


def compute_for_task(
    task_type: str, gold: Sequence[Any], predicted: Sequence[Any], negative_label: str | None = None
) -> dict[str, Any]:
    """Score by task type (ner, pico, re, similarity, multilabel, qa, classification): the task type's own
    scorer (`Task.score`); `negative_label` is RE's no-relation class, which the other types ignore."""
    # the task types call this module's scorers, so they are imported when scoring, not with this module
    from biotune.tasks import task_class

    return task_class(task_type).score(gold, predicted, negative_label)


def resolve_dataset(dataset: Any) -> Any:
    """A DatasetSpec from a registry name or alias (a spec is returned as it is)."""
    if not isinstance(dataset, str):
        return dataset
    try:
        return get_spec(dataset)
    except BiotuneError:
        raise
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"unknown dataset {dataset!r}: {exc}") from exc


def compute(dataset: Any, gold: Sequence[Any], predicted: Sequence[Any]) -> dict[str, Any]:
    """Score one dataset the way BLURB scores it.

    `dataset` is a registry name or alias, a DatasetSpec (its task type and negative label decide), or
    a bare task type for users' own files (RE then needs one of the known negative labels in the data).
    """
    from biotune.tasks import TASK_TYPES

    if isinstance(dataset, str) and dataset in TASK_TYPES:
        return compute_for_task(dataset, gold, predicted)
    spec = resolve_dataset(dataset)
    result = compute_for_task(spec.task_type, gold, predicted, getattr(spec, "negative_label", None))
    result["dataset"] = spec.name
    return result


# ---------------------------------------------------------------------------------------------- BLURB score


# Gu et al. 2021, PubMedBERT-base (abstracts), test set: the reference row beside every BLURB table
PUBMEDBERT_TEST: dict[str, float] = {
    "BC5CDR-chem": 93.33,
    "BC5CDR-disease": 85.62,
    "NCBI-disease": 87.82,
    "BC2GM": 84.52,
    "JNLPBA": 79.10,
    "ebmnlp": 73.38,
    "chemprot": 77.24,
    "DDI": 82.36,
    "GAD": 83.96,
    "BIOSSES": 92.30,
    "HoC": 82.32,
    "pubmedqa": 55.84,
    "BioASQ": 87.56,
}


@dataclass(frozen=True)
class BlurbScore:
    """Per-type means, per-dataset scores (canonical names, BLURB order) and the mean over the 6 types."""

    per_type: dict[str, float]
    per_dataset: dict[str, float]
    score: float | None
    missing_types: list[str] = field(default_factory=list)
    missing_datasets: list[str] = field(default_factory=list)
    # the mean over the task types that are present, when some are not: not comparable to published
    # BLURB scores, and always reported with how many types it covers
    partial_score: float | None = None
    types_present: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _canonical_blurb_name(key: str) -> str:
    name = resolve_dataset(key).name
    if name not in BLURB_TYPE_OF_DATASET:
        raise ConfigError(f"{key!r} is not one of the 13 BLURB datasets ({', '.join(BLURB_TYPE_OF_DATASET)})")
    return name


def blurb_score(scores: Mapping[str, float]) -> BlurbScore:
    """Mean per BLURB task type of its datasets' scores, then the mean of the 6 type means.

    Keys are registry names or aliases. A type with only some of its datasets is averaged over those
    given (and the rest are listed as missing); the BLURB score is None unless all 6 types are present.
    """
    per_name: dict[str, float] = {}
    given_as: dict[str, str] = {}
    for key, value in scores.items():
        name = _canonical_blurb_name(key)
        if name in per_name:
            raise ConfigError(
                f"{name} is given twice (as {given_as[name]!r} and {key!r}); give each dataset once"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"the score of {key!r} must be a finite number, got {value!r}")
        if not -100.0 <= value <= 100.0:
            raise ConfigError(f"the score of {key!r} is {value}: scores are on the 0-100 scale")
        per_name[name] = float(value)
        given_as[name] = key

    per_dataset: dict[str, float] = {}
    per_type: dict[str, float] = {}
    missing_types: list[str] = []
    missing_datasets: list[str] = []
    for kind in BLURB_TYPES:
        present = [name for name in BLURB_DATASETS[kind] if name in per_name]
        missing_datasets.extend(name for name in BLURB_DATASETS[kind] if name not in per_name)
        per_dataset.update({name: per_name[name] for name in present})
        if present:
            per_type[kind] = sum(per_name[name] for name in present) / len(present)
        else:
            missing_types.append(kind)
    score = None if missing_types else sum(per_type.values()) / len(BLURB_TYPES)
    partial = sum(per_type.values()) / len(per_type) if per_type and missing_types else None
    return BlurbScore(per_type, per_dataset, score, missing_types, missing_datasets, partial, len(per_type))


# ---------------------------------------------------------------------------------------------- score files


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"not valid JSON: {exc.msg}", "fix the JSON syntax") from exc
    except OSError as exc:
        raise DataError(path, None, f"cannot read the file: {exc.strerror}") from exc


def read_scores_json(path: Path) -> dict[str, float]:
    """A JSON object mapping dataset name (or alias) to its score on the 0-100 scale."""
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise DataError(
            path,
            None,
            "expected a non-empty JSON object of dataset: score",
            'write e.g. {"BC5-chem": 93.33, "GAD": 83.96}',
        )
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(
                path,
                None,
                f"the score of {key!r} is {value!r}, not a number",
                "give each dataset one number, its mean test score on the 0-100 scale",
            )
    return {key: float(value) for key, value in data.items()}


def read_run_result(path: Path, failed: str = "error") -> tuple[str, float]:
    """(dataset, mean test score) from a run's results.json.

    A run whose every seed failed has no mean over successful seeds: an error (`failed="error"`), or, with
    `failed="count"`, the mean test score of its failed seeds that were scored (collapsed seeds are; a seed
    that diverged is not), so that a failure lowers the score instead of vanishing from it."""
    results = read_file(path, RunResults)
    dataset, summary = results.dataset, results.summary
    if not dataset:
        raise DataError(
            path,
            None,
            'no "dataset" name in this result',
            "only runs on a BLURB dataset count toward the BLURB score",
        )
    mean = summary.mean
    if summary.n_ok == 0 and failed == "count":
        scored = [score for seed in results.seeds if (score := seed.score("test")) is not None]
        if scored:
            mean = sum(scored) / len(scored)
    elif summary.n_ok == 0:
        raise DataError(
            path,
            None,
            f"every seed of this {dataset} run failed: it has no mean score",
            "rerun it (see its train.log), or leave this folder out",
        )
    if mean is None or not math.isfinite(mean):
        raise DataError(
            path,
            None,
            f'"summary"."mean" is {mean!r}, not a number',
            "rerun or fix the run so that its summary holds the mean test score",
        )
    if summary.split != "test":
        raise DataError(
            path,
            None,
            f"this {dataset} run's summary is on {summary.split!r}, not test",
            "BLURB scores the test split: rerun with the test file",
        )
    return dataset, float(mean)


def find_results(folder: Path) -> list[Path]:
    """results.json of a run folder, or of the run folders one or two levels below a study folder."""
    own = folder / RESULTS_FILE
    if own.is_file():
        return [own]
    found = sorted(folder.glob(f"*/{RESULTS_FILE}"))
    run_folders = {path.parent for path in found}
    found += sorted(p for p in folder.glob(f"*/*/{RESULTS_FILE}") if p.parent.parent not in run_folders)
    return found


def read_scores(paths: Sequence[Path], failed: str = "error") -> dict[str, float]:
    """Scores from one scores JSON file, or from one or more run/study folders (one run per dataset);
    `failed` as in `read_run_result`."""
    if failed not in ("error", "count"):
        raise ConfigError(f"failed must be error or count, got {failed!r}")
    if not paths:
        raise ConfigError("give a scores JSON file, or one or more result folders")
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder")
    if any(path.is_file() for path in paths):
        if len(paths) > 1:
            raise ConfigError("give either one scores JSON file or result folders, not several files or both")
        return read_scores_json(paths[0])

    found: dict[str, tuple[float, Path]] = {}
    for folder in paths:
        results = find_results(folder)
        if not results:
            raise ConfigError(
                f"{folder}: no {RESULTS_FILE} in it or in its sub-folders (one or two levels down)"
            )
        for result_path in results:
            dataset, mean = read_run_result(result_path, failed)
            try:
                name = resolve_dataset(dataset).name
            except ConfigError as exc:
                raise DataError(
                    result_path,
                    None,
                    f"a run on {dataset!r}: {exc}",
                    "only runs on the 13 BLURB datasets count toward the BLURB score",
                ) from exc
            if name in found:
                raise ConfigError(
                    f"{name} has two results, {found[name][1]} and {result_path}; "
                    "pass one result folder per dataset"
                )
            found[name] = (mean, result_path)
    return {name: mean for name, (mean, _) in found.items()}
