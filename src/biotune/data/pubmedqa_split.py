"""PubMedQA's BLURB splits, generated from the two published originals as data/SOURCES.md describes.

pubmedqa/pubmedqa publishes `ori_pqal.json` (1000 expert-labelled questions) but not the split files; its
`preprocess/split_dataset.py pqal` makes them with Python's `random` seeded 0. This module replays that
procedure (same random draws, same order, same `json.dump(..., indent=4)`), so the output is byte-identical
and is then checked against the recorded sha256 like any downloaded file:

- each label's ids (in file order) are shuffled and cut into equal parts, the last part taking the rest;
- part i of the split is part i of "yes", then "no", then "maybe";
- when the last part comes out smaller, one random id of each other part moves to it;
- 2 parts: the first is the cross-validation pool (500), the second `test_set.json` (500);
- the pool in 10 parts: fold 0's `dev_set.json` is part 0 and `train_set.json` parts 1-9 in order.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from biotune.errors import DataError

LABEL_ORDER = ("yes", "no", "maybe")
# data-home paths of the generated files, keyed by what they are
GENERATED_FILES = {
    "test": "pubmedqa/test_set.json",
    "train": "pubmedqa/pqal_fold0/train_set.json",
    "dev": "pubmedqa/pqal_fold0/dev_set.json",
}

Questions = dict[str, dict[str, Any]]


def _cut(ids: list[str], parts: int, rng: random.Random) -> list[list[str]]:
    rng.shuffle(ids)
    size = math.ceil(len(ids) / parts)
    return [ids[i * size : (i + 1) * size] if i < parts - 1 else ids[i * size :] for i in range(parts)]


def _split(questions: Questions, parts: int, rng: random.Random, source: Path) -> list[Questions]:
    by_label: dict[str, list[str]] = {label: [] for label in LABEL_ORDER}
    for pmid, item in questions.items():
        decision = item.get("final_decision") if isinstance(item, dict) else None
        if decision not in by_label:
            raise DataError(
                source,
                None,
                f"question {pmid} has final_decision {decision!r}, expected one of {', '.join(LABEL_ORDER)}",
                "this is not the published ori_pqal.json: fetch it again",
            )
        by_label[decision].append(pmid)
    cut = {label: _cut(ids, parts, rng) for label, ids in by_label.items()}
    output = [
        {pmid: questions[pmid] for label in LABEL_ORDER for pmid in cut[label][i]} for i in range(parts)
    ]
    if len(output[-1]) != len(output[0]):
        for part in output[:-1]:
            moved = rng.choice(list(part))
            output[-1][moved] = part.pop(moved)
    return output


def generate_splits(original: Path) -> dict[str, str]:
    """The three split files' text (data-home path -> JSON text) from `ori_pqal.json`."""
    try:
        questions = json.loads(original.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(original, None, f"cannot read PubMedQA's original questions: {exc}") from exc
    rng = random.Random(0)  # the published script seeds the global generator with 0 before any draw
    pool, test = _split(questions, 2, rng, original)
    folds = _split(pool, 10, rng, original)
    train = {pmid: item for fold in folds[1:] for pmid, item in fold.items()}
    return {
        GENERATED_FILES["test"]: json.dumps(test, indent=4),
        GENERATED_FILES["train"]: json.dumps(train, indent=4),
        GENERATED_FILES["dev"]: json.dumps(folds[0], indent=4),
    }
