"""Load a BLURB dataset's splits, or a user's own train/dev/test files, and count their units."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from biotune.data.examples import Example
from biotune.data.paths import resolve_data_dir
from biotune.data.readers import ReadOptions
from biotune.data.registry import SPLITS, DatasetSpec, custom_spec, get_spec
from biotune.errors import ConfigError, DataError
from biotune.tasks import Task, task_class


@dataclass
class DatasetSplits:
    spec: DatasetSpec
    train: list[Example] = field(default_factory=list)
    dev: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)
    missing: dict[str, Path] = field(default_factory=dict)  # split -> the file that was not there

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return getattr(self, name)


def _check_splits(splits: Iterable[str]) -> tuple[str, ...]:
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ConfigError(f"unknown split(s) {', '.join(unknown)}; choose from {', '.join(SPLITS)}")
    return splits


def _reader_labels(spec: DatasetSpec) -> tuple[str, ...] | None:
    # similarity has no label set; an empty tuple would otherwise mean "no label allowed"
    return spec.labels or None


def split_path(spec: DatasetSpec, split: str, data_dir: Path) -> Path:
    return data_dir / spec.files[split]


def load_dataset(
    name_or_spec: str | DatasetSpec,
    data_dir: Path | str | None = None,
    splits: Sequence[str] = SPLITS,
    allow_missing: bool = False,
) -> DatasetSplits:
    """Read the requested splits. A missing file is a DataError unless `allow_missing` records it instead."""
    spec = get_spec(name_or_spec)
    splits = _check_splits(splits)
    home = resolve_data_dir(Path(data_dir) if data_dir is not None else None)
    result = DatasetSplits(spec=spec)
    for split in splits:
        path = split_path(spec, split, home)
        if not path.is_file():
            if allow_missing:
                result.missing[split] = path
                continue
            raise DataError(
                path,
                None,
                f"the {split} split of {spec.name} is missing (no such file)",
                f"run `biotune data fetch {spec.name}` to download and verify it (BLURB.md and "
                "data/SOURCES.md explain which files may be absent from a staged copy); or choose "
                "another dataset",
            )
        setattr(result, split, task_class(spec.task_type).read(path, _reader_labels(spec)))
    return result


def _unseen_label_error(
    path: Path, line: int, label: str, train_file: Path, known: Iterable[str]
) -> DataError:
    return DataError(
        path,
        line,
        f"label {label!r} never appears in the training file {train_file}",
        f"labels seen in training: {', '.join(sorted(known))}; fix the label or add training "
        "examples with it",
    )


def _check_labels_seen(
    task: type[Task], examples: list[Example], path: Path, train_file: Path, known: set[str]
) -> None:
    for example in examples:
        for position, label in enumerate(task.label_names(example)):
            if label not in known:
                raise _unseen_label_error(path, task.label_line(example, position), label, train_file, known)


def load_own_files(
    task_type: str,
    train_file: Path | str,
    dev_file: Path | str | None = None,
    test_file: Path | str | None = None,
    negative_label: str | None = None,
    name: str | None = None,
    options: ReadOptions | None = None,
) -> DatasetSplits:
    """A user's own files: labels come from train; dev/test may only use labels seen in train.

    `options`: their format (default auto: BLURB's TSV layouts, JSON Lines, CSV or CoNLL, told apart by
    extension and content) and the tag names of integer tags."""
    task = task_class(task_type)
    options = options or ReadOptions()
    if dev_file is None:
        raise ConfigError("a dev file is needed to pick checkpoints and report dev scores: pass --dev-file")
    train_path, dev_path = Path(train_file), Path(dev_file)
    train = task.read(train_path, options=options)
    labels = task.own_labels(train_path, train)
    files = {"train": str(train_path), "dev": str(dev_path)}
    if test_file is not None:
        files["test"] = str(test_file)
    spec = custom_spec(
        task_type,
        labels,
        name=name or train_path.parent.name or "custom",
        negative_label=negative_label,
        files=files,
    )
    result = DatasetSplits(spec=spec, train=train)
    for split in ("dev", "test"):
        if split not in files:
            continue
        path = Path(files[split])
        if task.labels_by_name:  # read freely, then name the line of a label train never had
            examples = task.read(path, options=options)
            _check_labels_seen(task, examples, path, train_path, set(labels))
        else:  # multi-label columns are counted against train's
            examples = task.read(path, _reader_labels(spec), options)
        setattr(result, split, examples)
    return result


def _task_type(spec_or_task_type: DatasetSpec | str) -> str:
    return spec_or_task_type if isinstance(spec_or_task_type, str) else spec_or_task_type.task_type


def count_units(spec: DatasetSpec | str, examples: Iterable[Example]) -> int:
    """BLURB's size unit (`Task.count_units`): NER mentions, PICO non-O tokens, otherwise one per example.

    `spec` may also be a bare task type.
    """
    return task_class(_task_type(spec)).count_units(list(examples))


def label_counts(spec: DatasetSpec | str, examples: Iterable[Example]) -> dict[str, int]:
    """How often each label occurs: tags for NER/PICO, hallmarks for multilabel, labels otherwise.

    Multilabel indices are shown by the spec's label names; with a bare task type, as indices.
    """
    names = () if isinstance(spec, str) else spec.labels
    task = task_class(_task_type(spec))
    counts: dict[str, int] = {}
    for example in examples:
        for key in task.label_names(example, names):  # none for similarity pairs: they carry scores
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
