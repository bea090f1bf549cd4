"""Small slices of the real BLURB files, written in their own format to a temporary folder.

Tests train on these as users' own files: the same readers, a few examples, seconds of CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from biotune.config import TrainConfig

# dataset folder -> (task type, file per split)
LAYOUT: dict[str, tuple[str, dict[str, str]]] = {
    "NCBI-disease": ("ner", {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}),
    "ebmnlp": ("pico", {"train": "dev.tsv", "dev": "test.tsv", "test": "test.tsv"}),
    # one file for all splits: a small slice of each split lacks some of ChemProt's rare classes
    "chemprot": ("re", {"train": "train.tsv", "dev": "train.tsv", "test": "train.tsv"}),
    "GAD": ("re", {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}),
    "BIOSSES": ("similarity", {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}),
    "HoC": ("multilabel", {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}),
    "pubmedqa": (
        "qa",
        {"train": "pqal_fold0/train_set.json", "dev": "pqal_fold0/dev_set.json", "test": "test_set.json"},
    ),
    "BioASQ": ("qa", {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}),
}
HEADERS = ("index\t", "pair_id\t", "labels\t")


def _slice_blocks(text: str, n: int) -> str:
    """Tagged tsv: the first n sentences (blank-line separated), DOCSTART lines kept."""
    out: list[str] = []
    sentences = 0
    in_sentence = False
    for line in text.splitlines():
        if not line.strip():
            if in_sentence:
                sentences += 1
                in_sentence = False
                if sentences >= n:
                    break
            out.append(line)
            continue
        if not line.startswith("-DOCSTART-"):
            in_sentence = True
        out.append(line)
    return "\n".join(out) + "\n"


def _slice_rows(text: str, n: int) -> str:
    lines = text.splitlines()
    header = lines[:1] if lines and lines[0].startswith(HEADERS) else []
    body = lines[len(header) :]
    if header and header[0].startswith("labels\t"):  # HoC: n abstracts, all their sentences
        pmids: list[str] = []
        kept = []
        for line in body:
            pmid = line.rsplit("\t", 1)[-1].split("_s")[0]
            if pmid not in pmids:
                if len(pmids) == n:
                    break
                pmids.append(pmid)
            kept.append(line)
        body = kept
    else:
        body = body[:n]
    return "\n".join(header + body) + "\n"


def write_slice(shared_data: Path, dataset: str, folder: Path, n: int) -> tuple[str, dict[str, Path]]:
    """The first n examples of each split of `dataset`, in the original format, under `folder`."""
    task_type, files = LAYOUT[dataset]
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for split, name in files.items():
        source = shared_data / dataset / name
        text = source.read_text(encoding="utf-8")
        if name.endswith(".json"):
            items = list(json.loads(text).items())
            items = items[:: max(1, len(items) // n)][
                :n
            ]  # spread out: PubMedQA's files are grouped by answer
            sliced = json.dumps(dict(items))
        elif task_type in ("ner", "pico"):
            sliced = _slice_blocks(text, n)
        else:
            sliced = _slice_rows(text, n)
        target = folder / f"{split}{Path(name).suffix}"
        target.write_text(sliced, encoding="utf-8")
        paths[split] = target
    return task_type, paths


def slice_config(
    shared_data: Path, folder: Path, dataset: str, model: Path, n: int, **extra: Any
) -> TrainConfig:
    """A quick own-files run on a slice: one seed, one epoch, short inputs, a high learning rate."""
    task_type, files = write_slice(shared_data, dataset, folder / "data", n)
    values: dict[str, Any] = {
        "train_file": files["train"],
        "dev_file": files["dev"],
        "test_file": files["test"],
        "task_type": task_type,
        "model": str(model),
        "seeds": [0],
        "epochs": 1,
        "batch_size": 8,
        "max_length": 64,
        "learning_rate": 1e-4,
    }
    return TrainConfig(**{**values, **extra})
