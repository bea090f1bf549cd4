"""`data check` logic: read every split, count units, compare with the BLURB table; validate one user file.

Statuses per split: `ok` (units equal BLURB's table), `mismatch` (they differ; `known: true` with a
`note` when it is one of the documented differences in BLURB.md), `missing` (no file: a warning, not
a failure), `error` (the file exists but cannot be read; `error` holds the message). A check passes
when no split is an unexplained mismatch or an error.

Beside the counts, each present file has a hash status (`biotune.data.manifest`): `verified` (its sha256
is the pinned one, or the one recorded when `data fetch` placed it), `unverified` (nothing to compare
with: a file without a pinned hash that biotune did not fetch) or `changed` (it differs: edited or
damaged since it was fetched). A changed file is a warning; the counts decide whether the check passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biotune.data.loading import count_units, label_counts, load_dataset, split_path
from biotune.data.manifest import CHANGED, Manifest, hash_status
from biotune.data.paths import resolve_data_dir
from biotune.data.readers import ReadOptions
from biotune.data.registry import DatasetSpec, all_specs, get_spec
from biotune.errors import BiotuneError, ConfigError, DataError
from biotune.tasks import task_class


@dataclass
class SplitReport:
    split: str
    file: str
    unit: str
    expected_units: int | None
    status: str
    examples: int | None = None
    units: int | None = None
    known: bool = False
    note: str | None = None
    error: str | None = None
    hash: str | None = None  # verified, unverified or changed; None when the file is missing
    sha256: str | None = None
    hash_note: str | None = None

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "missing") or (self.status == "mismatch" and self.known)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "examples": self.examples,
            "units": self.units,
            "unit": self.unit,
            "expected_units": self.expected_units,
            "status": self.status,
            "file": self.file,
        }
        if self.status == "mismatch":
            data["known"] = self.known
        if self.note:
            data["note"] = self.note
        if self.error:
            data["error"] = self.error
        if self.hash is not None:
            data["hash"] = self.hash
            data["sha256"] = self.sha256
        if self.hash_note:
            data["hash_note"] = self.hash_note
        return data


@dataclass
class DatasetReport:
    spec: DatasetSpec
    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.splits.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "display_name": self.spec.display_name,
            "task_type": self.spec.task_type,
            "metric": self.spec.metric,
            "splits": {name: r.to_dict() for name, r in self.splits.items()},
        }


@dataclass
class CheckReport:
    data_dir: Path
    datasets: list[DatasetReport]

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.datasets)

    @property
    def warnings(self) -> list[str]:
        missing = [
            f"{d.spec.name} {s.split}: file missing ({s.file}); " + (s.note or "")
            for d in self.datasets
            for s in d.splits.values()
            if s.status == "missing"
        ]
        changed = [
            f"{d.spec.name} {s.split}: {s.file} {s.hash_note}"
            for d in self.datasets
            for s in d.splits.values()
            if s.hash == CHANGED
        ]
        return missing + changed

    @property
    def problems(self) -> list[str]:
        found = []
        for d in self.datasets:
            for s in d.splits.values():
                if s.status == "error":
                    found.append(f"{d.spec.name} {s.split}: {s.error}")
                elif not s.passed:
                    found.append(
                        f"{d.spec.name} {s.split}: {s.units} {s.unit}, BLURB's table says {s.expected_units}"
                    )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "passed": self.passed,
            "datasets": [d.to_dict() for d in self.datasets],
            "warnings": self.warnings,
            "problems": self.problems,
        }


MISSING_NOTE = (
    "`biotune data fetch` downloads it; BLURB.md and data/SOURCES.md say which files may be absent here"
)


def _check_split(spec: DatasetSpec, split: str, data_dir: Path, manifest: Manifest) -> SplitReport:
    path = split_path(spec, split, data_dir)
    report = SplitReport(
        split=split,
        file=str(path),
        unit=spec.unit,
        expected_units=spec.expected_units.get(split),
        status="missing",
    )
    try:
        loaded = load_dataset(spec, data_dir, splits=(split,), allow_missing=True)
    except DataError as exc:
        report.status, report.error = "error", str(exc)
        return report
    if split in loaded.missing:
        report.note = MISSING_NOTE
        return report
    verification = hash_status(data_dir, spec.files[split], manifest)
    report.hash, report.sha256, report.hash_note = verification.status, verification.sha256, verification.note
    examples = loaded.split(split)
    report.examples, report.units = len(examples), count_units(spec, examples)
    if report.expected_units is None or report.units == report.expected_units:
        report.status = "ok"
    else:
        report.status = "mismatch"
        report.note = spec.known_differences.get(split)
        report.known = report.note is not None
    return report


def check_datasets(data_dir: Path | str | None = None, names: Iterable[str] | None = None) -> CheckReport:
    """Read every split of the named datasets (all 13 by default) and compare with the BLURB table."""
    specs = [get_spec(name) for name in names] if names else all_specs()
    home = resolve_data_dir(Path(data_dir) if data_dir is not None else None)
    manifest = Manifest.load(home)
    reports = [
        DatasetReport(spec, {split: _check_split(spec, split, home, manifest) for split in spec.splits})
        for spec in specs
    ]
    return CheckReport(data_dir=home, datasets=reports)


def list_datasets(data_dir: Path | str | None = None) -> tuple[Path | None, list[dict[str, Any]]]:
    """The registry as plain rows, with split sizes read from the data when a data folder is found."""
    try:
        report: CheckReport | None = check_datasets(data_dir)
    except ConfigError:
        if data_dir is not None:
            raise  # an explicit folder that is wrong is the user's to fix
        report = None  # no data anywhere: still list the registry
    by_name = {d.spec.name: d for d in report.datasets} if report else {}
    rows = []
    for spec in all_specs():
        splits: dict[str, Any] = {}
        for split in spec.splits:
            row: dict[str, Any] = {
                "file": spec.files[split],
                "expected_units": spec.expected_units.get(split),
            }
            if spec.name in by_name:
                found = by_name[spec.name].splits[split]
                row.update(status=found.status, examples=found.examples, units=found.units, known=found.known)
            splits[split] = row
        rows.append(
            {
                "name": spec.name,
                "display_name": spec.display_name,
                "aliases": list(spec.aliases),
                "task_type": spec.task_type,
                "metric": spec.metric,
                "unit": spec.unit,
                "labels": list(spec.labels),
                "negative_label": spec.negative_label,
                "num_seeds": spec.num_seeds,
                "splits": splits,
            }
        )
    return (report.data_dir if report else None), rows


@dataclass
class FileReport:
    file: str
    task_type: str
    status: str  # ok or error
    examples: int | None = None
    units: int | None = None
    unit: str | None = None
    labels: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] | None = None  # similarity files: min, max, mean of the gold scores
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        data["passed"] = self.passed
        return data


def check_file(task_type: str, path: Path | str, options: ReadOptions | None = None) -> FileReport:
    """Validate one user file: read it the way training would and summarise it, or return the error."""
    task = task_class(task_type)
    report = FileReport(file=str(path), task_type=task_type, status="ok", unit=task.unit)
    try:
        examples = task.read(path, options=options or ReadOptions())
    except BiotuneError as exc:
        report.status, report.error = "error", str(exc)
        return report
    report.examples, report.units = len(examples), task.count_units(examples)
    report.labels = label_counts(task_type, examples)
    report.scores = task.score_summary(examples)
    return report
