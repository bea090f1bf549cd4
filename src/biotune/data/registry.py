"""The 13 BLURB datasets as declarative, frozen specs, plus specs for users' own files.

Counts, metrics and defaults come from /work/shared/BLURB.md (BLURB task table, LinkBERT's
per-task hyper-parameters, Gu et al.'s seed protocol). Lookup is case-insensitive over the
folder name, BLURB's display name and friendly aliases.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from biotune.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "dev", "test")

NER_TAGS: tuple[str, ...] = ("B", "I", "O")
PICO_TAGS: tuple[str, ...] = ("I-INT", "I-OUT", "I-PAR", "O")
HOC_HALLMARKS: tuple[str, ...] = (
    "activating invasion and metastasis",
    "avoiding immune destruction",
    "cellular energetics",
    "enabling replicative immortality",
    "evading growth suppressors",
    "genomic instability and mutation",
    "inducing angiogenesis",
    "resisting cell death",
    "sustaining proliferative signaling",
    "tumor promoting inflammation",
)

# Negative classes of the public RE sets; a user's RE labels are searched for one of these.
KNOWN_NEGATIVE_LABELS: tuple[str, ...] = ("false", "DDI-false", "0")


@dataclass(frozen=True)
class HyperParams:
    """Registry defaults for one dataset.

    `warmup_steps`, when set, is what LinkBERT used (100 steps for the QA sets); engines that only take a
    ratio use `warmup_ratio`.
    """

    batch_size: int
    learning_rate: float
    epochs: int
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    display_name: str
    aliases: tuple[str, ...]
    task_type: str
    metric: str
    files: dict[str, str]
    labels: tuple[str, ...]
    unit: str
    expected_units: dict[str, int]
    max_length: int
    defaults: HyperParams
    negative_label: str | None = None
    num_seeds: int = 5
    known_differences: dict[str, str] = field(default_factory=dict)
    is_custom: bool = False

    def __hash__(self) -> int:  # dict fields are not hashable; the name identifies a spec
        return hash((self.name, self.task_type, self.files.get("train")))

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(split for split in SPLITS if split in self.files)


def _tsv_files(folder: str) -> dict[str, str]:
    return {split: f"{folder}/{split}.tsv" for split in SPLITS}


def _ner(
    name: str,
    display: str,
    aliases: tuple[str, ...],
    units: tuple[int, int, int],
    defaults: HyperParams,
    known: dict[str, str] | None = None,
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        display_name=display,
        aliases=aliases,
        task_type="ner",
        metric="entity-level F1",
        files=_tsv_files(name),
        labels=NER_TAGS,
        unit="mentions",
        expected_units=dict(zip(SPLITS, units, strict=True)),
        max_length=512,
        defaults=defaults,
        known_differences=known or {},
    )


_SPECS: tuple[DatasetSpec, ...] = (
    _ner(
        "BC5CDR-chem",
        "BC5-chem",
        ("bc5-chem", "bc5cdr-chem", "bc5chem"),
        (5203, 5347, 5385),
        HyperParams(32, 5e-5, 20),
    ),
    _ner(
        "BC5CDR-disease",
        "BC5-disease",
        ("bc5-disease", "bc5cdr-disease", "bc5-dis", "bc5disease"),
        (4182, 4244, 4424),
        HyperParams(16, 5e-5, 8),
        known={
            "dev": "the file has 4,246 B tags, BLURB's table says 4,244; the file is byte-identical to "
            "the Crichton/MTL file converted with the BLURB rule (data/SOURCES.md)"
        },
    ),
    _ner(
        "NCBI-disease", "NCBI-disease", ("ncbi-disease", "ncbi"), (5134, 787, 960), HyperParams(32, 5e-5, 20)
    ),
    _ner("BC2GM", "BC2GM", ("bc2gm", "bc2"), (15197, 3061, 6325), HyperParams(32, 6e-5, 50)),
    _ner("JNLPBA", "JNLPBA", ("jnlpba",), (46750, 4551, 8662), HyperParams(16, 1e-5, 5)),
    DatasetSpec(
        name="ebmnlp",
        display_name="EBM PICO",
        aliases=("ebm-pico", "pico", "ebmnlp", "ebm-nlp"),
        task_type="pico",
        metric="macro word-level F1 over P/I/O",
        files=_tsv_files("ebmnlp"),
        labels=PICO_TAGS,
        unit="labelled tokens",
        expected_units={"train": 339167, "dev": 85321, "test": 16364},
        max_length=512,
        defaults=HyperParams(32, 5e-5, 1),
        known_differences={
            "dev": "the file has 87,308 non-O tokens, BLURB's table says 85,321; "
            "the test split matches exactly (data/SOURCES.md)"
        },
    ),
    DatasetSpec(
        name="chemprot",
        display_name="ChemProt",
        aliases=("chemprot", "chem-prot"),
        task_type="re",
        metric="micro F1 over positive classes",
        files=_tsv_files("chemprot"),
        labels=("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false"),
        negative_label="false",
        unit="pairs",
        expected_units={"train": 18035, "dev": 11268, "test": 15745},
        max_length=256,
        defaults=HyperParams(32, 3e-5, 10),
    ),
    DatasetSpec(
        name="DDI",
        display_name="DDI",
        aliases=("ddi",),
        task_type="re",
        metric="micro F1 over positive classes",
        files=_tsv_files("DDI"),
        labels=("DDI-advise", "DDI-effect", "DDI-false", "DDI-int", "DDI-mechanism"),
        negative_label="DDI-false",
        unit="pairs",
        expected_units={"train": 25296, "dev": 2496, "test": 5716},
        max_length=256,
        defaults=HyperParams(32, 2e-5, 5),
    ),
    DatasetSpec(
        name="GAD",
        display_name="GAD",
        aliases=("gad",),
        task_type="re",
        metric="micro F1 (positive class)",
        files=_tsv_files("GAD"),
        labels=("0", "1"),
        negative_label="0",
        unit="pairs",
        # max length 128 as in Gu et al.; LinkBERT's scripts used 256
        expected_units={"train": 4261, "dev": 535, "test": 534},
        max_length=128,
        defaults=HyperParams(32, 3e-5, 10),
    ),
    DatasetSpec(
        name="BIOSSES",
        display_name="BIOSSES",
        aliases=("biosses",),
        task_type="similarity",
        metric="Pearson",
        files=_tsv_files("BIOSSES"),
        labels=(),
        unit="pairs",
        expected_units={"train": 64, "dev": 16, "test": 20},
        max_length=128,
        defaults=HyperParams(16, 1e-5, 30),
        num_seeds=10,
    ),
    DatasetSpec(
        name="HoC",
        display_name="HoC",
        aliases=("hoc", "hallmarks-of-cancer"),
        task_type="multilabel",
        metric="micro F1, abstract level",
        files=_tsv_files("HoC"),
        labels=HOC_HALLMARKS,
        unit="abstracts",
        expected_units={"train": 1295, "dev": 186, "test": 371},
        max_length=512,
        defaults=HyperParams(32, 4e-5, 40),
    ),
    DatasetSpec(
        name="pubmedqa",
        display_name="PubMedQA",
        aliases=("pubmedqa", "pubmed-qa"),
        task_type="qa",
        metric="accuracy",
        files={
            "train": "pubmedqa/pqal_fold0/train_set.json",
            "dev": "pubmedqa/pqal_fold0/dev_set.json",
            "test": "pubmedqa/test_set.json",
        },
        labels=("yes", "no", "maybe"),
        unit="questions",
        expected_units={"train": 450, "dev": 50, "test": 500},
        max_length=512,
        defaults=HyperParams(16, 2e-5, 30, warmup_steps=100),
        num_seeds=10,
    ),
    DatasetSpec(
        name="BioASQ",
        display_name="BioASQ",
        aliases=("bioasq", "bioasq-7b"),
        task_type="qa",
        metric="accuracy",
        files=_tsv_files("BioASQ"),
        labels=("yes", "no"),
        unit="questions",
        expected_units={"train": 670, "dev": 75, "test": 140},
        max_length=512,
        defaults=HyperParams(16, 2e-5, 20, warmup_steps=100),
        num_seeds=10,
    ),
)


def _build_index(specs: tuple[DatasetSpec, ...]) -> dict[str, DatasetSpec]:
    index: dict[str, DatasetSpec] = {}
    for spec in specs:
        for key in {spec.name.lower(), spec.display_name.lower(), *(a.lower() for a in spec.aliases)}:
            if key in index and index[key] is not spec:
                raise RuntimeError(f"registry: {key!r} names both {index[key].name} and {spec.name}")
            index[key] = spec
    return index


_INDEX = _build_index(_SPECS)


def all_specs() -> list[DatasetSpec]:
    """The 13 datasets in BLURB table order."""
    return list(_SPECS)


def dataset_names() -> list[str]:
    return [spec.name for spec in _SPECS]


def get_spec(name_or_alias: str | DatasetSpec) -> DatasetSpec:
    if isinstance(name_or_alias, DatasetSpec):
        return name_or_alias
    key = name_or_alias.strip().lower()
    if key in _INDEX:
        return _INDEX[key]
    close = difflib.get_close_matches(key, list(_INDEX), n=1, cutoff=0.5)
    hint = f"did you mean {_INDEX[close[0]].name!r}? " if close else ""
    raise ConfigError(
        f"unknown dataset {name_or_alias!r}; {hint}known datasets: {', '.join(dataset_names())} "
        "(aliases are listed by `biotune datasets`)"
    )


def task_type_of(name: str) -> str:
    return get_spec(name).task_type


def resolve_negative_label(labels: tuple[str, ...], negative_label: str | None) -> str:
    if negative_label is not None:
        if labels and negative_label not in labels:
            raise ConfigError(
                f"negative label {negative_label!r} is not one of the labels {', '.join(labels)}; "
                "pass --negative-label with one of them"
            )
        return negative_label
    found = [label for label in KNOWN_NEGATIVE_LABELS if label in labels]
    if len(found) == 1:
        return found[0]
    raise ConfigError(
        f"cannot tell which relation label means 'no relation' among {', '.join(labels) or '(none)'}; "
        "pass --negative-label LABEL (RE is scored by micro F1 over the other classes)"
    )


def custom_spec(
    task_type: str,
    labels: tuple[str, ...] | list[str],
    name: str = "custom",
    negative_label: str | None = None,
    files: dict[str, str] | None = None,
) -> DatasetSpec:
    """A spec for a user's own files: metric, unit and defaults from the task type; no expected counts."""
    # the task types import this module (KNOWN_NEGATIVE_LABELS), so they are imported when first needed
    from biotune.tasks import task_class

    task = task_class(task_type)
    labels = tuple(labels)
    return DatasetSpec(
        name=name,
        display_name=name,
        aliases=(),
        task_type=task_type,
        metric=task.metric_name,
        files=dict(files or {}),
        labels=labels,
        unit=task.unit,
        expected_units={},
        max_length=task.own_max_length,
        defaults=HyperParams(**task.own_hyperparams),
        negative_label=task.own_negative_label(labels, negative_label),
        is_custom=True,
    )
