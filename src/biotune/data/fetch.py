"""`biotune data fetch`: bring BLURB into a data home, every file verified before it is placed.

For each file of the chosen datasets (`biotune.data.sources`):

1. a file already in the data home whose sha256 is the pinned one (or, for a file without a pinned hash,
   the one recorded in the manifest) is kept, and nothing is downloaded for it;
2. otherwise its bytes go into `<home>/.biotune-partial/<path>` (resumed from there when a previous attempt
   left some), from the pinned upstream URL, or from a mirror laid out like a data home (`--mirror`, over
   HTTP or a folder);
3. the partial file is verified: the pinned size and sha256, or, with no pinned hash, its BLURB count
   (EBM PICO train: 339,167 labelled tokens), whose hash then goes into the manifest;
4. only then is it renamed into place (`os.replace`, atomic on one file system) and recorded in the manifest.

PubMedQA's split files are not published: from upstream they are generated from the two originals and
then checked against their pinned hashes like any other file. Before the first download of a dataset its
terms are shown; datasets with terms need `accept_licenses` (or a yes from `ask`), recorded in the manifest.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from biotune.data.download import (
    Transfer,
    TransferFailed,
    TransferSettings,
    copy_from_folder,
    download,
    new_session,
)
from biotune.data.loading import count_units
from biotune.data.manifest import Manifest, sha256_of
from biotune.data.paths import fetch_home
from biotune.data.pubmedqa_split import generate_splits
from biotune.data.registry import get_spec
from biotune.data.sources import SOURCES, DatasetSource, SourceFile, source_for
from biotune.errors import BiotuneError, ConfigError
from biotune.tasks.factory import read_file

PARTIAL_DIR = ".biotune-partial"
MIRROR_ENV_VAR = "BIOTUNE_DATA_MIRROR"

# outcome statuses
KEPT, FETCHED, GENERATED, FAILED = "verified", "fetched", "generated", "failed"


class FetchError(BiotuneError):
    """A fetch could not go on: names the file, the URL, what happened and what to do."""


class LicenseNotAccepted(ConfigError):
    """Terms were shown and not accepted: nothing was downloaded."""


@dataclass(frozen=True)
class Mirror:
    """A copy laid out like a data home: an http(s) base URL or a local folder."""

    location: str

    @property
    def is_http(self) -> bool:
        return urlsplit(self.location).scheme in ("http", "https")

    def url(self, path: str) -> str:
        return f"{self.location.rstrip('/')}/{quote(path)}"

    def folder_file(self, path: str) -> Path:
        return Path(self.location).expanduser() / path


def resolve_mirror(given: str | Path | None) -> Mirror | None:
    """`--mirror`, else $BIOTUNE_DATA_MIRROR, else None (the pinned upstream URLs)."""
    location = str(given) if given is not None else os.environ.get(MIRROR_ENV_VAR) or None
    if location is None:
        return None
    mirror = Mirror(location)
    if not mirror.is_http and not Path(location).expanduser().is_dir():
        raise ConfigError(
            f"the mirror {location} is neither an http(s) URL nor a folder; give --mirror "
            "http://HOST:PORT/ or a folder laid out like the data home (BIOSSES/, pubmedqa/, ...)"
        )
    return mirror


@dataclass
class FileOutcome:
    dataset: str
    path: str
    status: str  # verified (kept), fetched, generated or failed
    bytes: int = 0  # bytes received over the wire / copied for this file
    source: str | None = None
    verified_by: str | None = None  # sha256 or counts
    resumed_from: list[int] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None


@dataclass
class FetchReport:
    home: Path
    home_chosen_by: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # dataset -> how its terms were accepted
    seconds: float = 0.0

    @property
    def failures(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def placed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status in (FETCHED, GENERATED)]

    @property
    def bytes_received(self) -> int:
        return sum(o.bytes for o in self.outcomes)

    def to_dict(self) -> dict[str, object]:
        return {
            "data_dir": str(self.home),
            "chosen_by": self.home_chosen_by,
            "passed": self.passed,
            "files": {
                o.path: {k: v for k, v in o.__dict__.items() if v not in (None, [])} for o in self.outcomes
            },
            "placed": len(self.placed),
            "kept": sum(o.status == KEPT for o in self.outcomes),
            "failed": len(self.failures),
            "bytes_received": self.bytes_received,
            "seconds": round(self.seconds, 3),
            "accepted_terms": self.accepted,
        }


class FetchProgress:
    """What a fetch tells its caller as it goes; the CLI draws a progress bar per file. Defaults: silent."""

    def terms(self, dataset: DatasetSource, already_accepted: bool) -> None: ...

    def file_started(self, path: str, total: int | None, already: int) -> None: ...

    def file_advanced(self, path: str, received: int) -> None: ...

    def file_finished(self, outcome: FileOutcome) -> None: ...


AskAcceptance = Callable[[DatasetSource], bool]


def _partial_path(home: Path, path: str) -> Path:
    return home / PARTIAL_DIR / path


def _is_verified(home: Path, file: SourceFile, manifest: Manifest) -> bool:
    target = home / file.path
    expected = manifest.expected_sha256(file.path)
    return target.is_file() and expected is not None and sha256_of(target) == expected


def _count_problem(file: SourceFile, partial: Path) -> str | None:
    """For a file without a pinned hash: None when its BLURB count is right, else what is wrong."""
    spec = get_spec(file.path.split("/", 1)[0])
    split = next(s for s, p in spec.files.items() if p == file.path)
    expected = spec.expected_units[split]
    try:
        examples = read_file(spec.task_type, partial, spec.labels or None)
    except BiotuneError as exc:
        return f"it cannot be read as {spec.name} {split}: {exc}"
    found = count_units(spec, examples)
    if found != expected:
        return f"it has {found:,} {spec.unit}, BLURB's table says {expected:,}"
    return None


def _verify(file: SourceFile, partial: Path) -> tuple[str | None, str]:
    """(problem or None, how it was verified)."""
    if file.sha256 is None:
        return _count_problem(file, partial), "counts"
    size = partial.stat().st_size
    if file.size is not None and size != file.size:
        return f"it has {size:,} bytes, the pinned file has {file.size:,}", "sha256"
    actual = sha256_of(partial)
    if actual != file.sha256:
        return f"its sha256 is {actual}, the pinned one is {file.sha256}", "sha256"
    return None, "sha256"


class _Fetcher:
    def __init__(
        self,
        home: Path,
        manifest: Manifest,
        mirror: Mirror | None,
        upstream: str | None,
        settings: TransferSettings,
        progress: FetchProgress,
        report: FetchReport,
    ) -> None:
        self.home, self.manifest, self.mirror, self.upstream = home, manifest, mirror, upstream
        self.settings, self.progress, self.report = settings, progress, report
        self.session = new_session() if mirror is None or mirror.is_http else None

    def where(self, file: SourceFile) -> str:
        if self.mirror is None:
            return file.upstream_url(self.upstream)
        return self.mirror.url(file.path) if self.mirror.is_http else str(self.mirror.folder_file(file.path))

    def _transfer(self, file: SourceFile, partial: Path) -> Transfer:
        def started(total: int | None, already: int) -> None:
            self.progress.file_started(file.path, total, already)

        def advanced(received: int) -> None:
            self.progress.file_advanced(file.path, received)

        if self.mirror is not None and not self.mirror.is_http:
            return copy_from_folder(self.mirror.folder_file(file.path), partial, started, advanced)
        assert self.session is not None
        return download(self.session, self.where(file), partial, self.settings, started, advanced)

    def _unreachable(self, file: SourceFile, url: str, failure: TransferFailed) -> FetchError:
        placed = len(self.report.placed)
        partial = _partial_path(self.home, file.path)
        kept = (
            f"; its {partial.stat().st_size:,} bytes received are kept for a resume"
            if partial.is_file() and partial.stat().st_size
            else ""
        )
        return FetchError(
            f"{file.path}: cannot download {url}: {failure.reason}. Nothing half-written was placed "
            f"({placed} file(s) placed before this one{kept}). Two ways out: "
            "run `biotune data fetch` again once the network is back (it resumes), or with --mirror URL|DIR "
            "to copy from a local mirror; or point --data-dir (or $BIOTUNE_DATA) at a folder that "
            "already holds BLURB"
        )

    def fetch_file(self, dataset: str, file: SourceFile) -> FileOutcome:
        outcome = FileOutcome(dataset, file.path, FAILED, source=self.where(file))
        partial = _partial_path(self.home, file.path)
        if file.size is not None and partial.exists() and partial.stat().st_size > file.size:
            partial.unlink()  # longer than the file: not a prefix of it
        for fresh_retry in (False, True):
            try:
                transfer = self._transfer(file, partial)
            except TransferFailed as failure:
                if failure.transient:
                    self.manifest.save()
                    raise self._unreachable(file, outcome.source or "", failure) from failure
                outcome.error = self._missing_message(file, outcome.source or "", failure)
                return outcome
            outcome.bytes += transfer.bytes_received
            outcome.attempts += transfer.attempts
            outcome.resumed_from += transfer.resumed_from
            problem, verified_by = _verify(file, partial)
            if problem is None:
                self._place(file, partial, verified_by, outcome.source or "")
                outcome.status, outcome.verified_by = FETCHED, verified_by
                return outcome
            partial.unlink(missing_ok=True)  # never placed, never resumed from
            if transfer.resumed_from and not fresh_retry:
                continue  # the kept prefix may have been stale: one full download before giving up
            outcome.error = (
                f"{file.path}: refused the file from {outcome.source}: {problem}. It was not placed. The "
                "source may be damaged or not the pinned version: run the fetch again, or fetch from "
                "another copy with --mirror URL|DIR"
            )
            return outcome
        return outcome

    def _missing_message(self, file: SourceFile, url: str, failure: TransferFailed) -> str:
        if self.mirror is not None:
            fix = (
                f"the mirror {self.mirror.location} lacks it: add it there, or fetch this dataset without "
                "--mirror (from the pinned upstream URL)"
            )
        else:
            fix = (
                "the pinned URL no longer serves it: fetch from a copy with --mirror URL|DIR, or point "
                "--data-dir at a folder that has it"
            )
        return f"{file.path}: cannot fetch {url}: {failure.reason}; {fix}"

    def _place(self, file: SourceFile, partial: Path, verified_by: str, source: str) -> None:
        target = self.home / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        size, digest = partial.stat().st_size, sha256_of(partial)
        partial.replace(target)
        self.manifest.record_file(file.path, digest, size, verified_by, source)
        self.manifest.save()

    def fetch_dataset(self, name: str, files: list[SourceFile]) -> Iterator[FileOutcome]:
        """Fetch a dataset's unverified files; from upstream, PubMedQA's split files are generated last."""
        to_generate = [f for f in files if f.generated and self.mirror is None]
        for file in files:
            if file not in to_generate:
                _check_writable(self.home, file)
                yield self.fetch_file(name, file)
        if not to_generate:
            return
        originals = [f for f in SOURCES[name].files if not f.generated]
        if all(_is_verified(self.home, f, self.manifest) for f in originals):
            yield from self.generate_pubmedqa(to_generate)
            return
        for file in to_generate:
            yield FileOutcome(
                name,
                file.path,
                FAILED,
                error=f"{file.path}: not generated, because an original it is generated from "
                f"({', '.join(f.path for f in originals)}) could not be fetched",
            )

    def generate_pubmedqa(self, files: list[SourceFile]) -> list[FileOutcome]:
        original = self.home / "pubmedqa" / "ori_pqal.json"
        source = f"generated from {original} (pubmedqa preprocess/split_dataset.py pqal, seed 0)"
        texts = generate_splits(original)
        outcomes = []
        for file in files:
            outcome = FileOutcome("pubmedqa", file.path, FAILED, source=source)
            partial = _partial_path(self.home, file.path)
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(texts[file.path], encoding="utf-8")
            problem, verified_by = _verify(file, partial)
            if problem is None:
                self._place(file, partial, verified_by, source)
                outcome.status, outcome.verified_by = GENERATED, verified_by
            else:
                partial.unlink(missing_ok=True)
                outcome.error = f"{file.path}: the generated file was refused: {problem}; it was not placed"
            outcomes.append(outcome)
        return outcomes


def _gate_terms(
    pending: list[DatasetSource],
    manifest: Manifest,
    accept_licenses: bool,
    ask: AskAcceptance | None,
    progress: FetchProgress,
) -> dict[str, str]:
    """Show the terms of every dataset about to be downloaded; all must be accepted before any download."""
    accepted: dict[str, str] = {}
    refused: list[DatasetSource] = []
    for dataset in pending:
        already = dataset.name in manifest.licenses
        progress.terms(dataset, already)
        if already or not dataset.needs_acceptance:
            continue
        if accept_licenses:
            accepted[dataset.name] = "--accept-licenses"
        elif ask is not None and ask(dataset):
            accepted[dataset.name] = "interactive yes"
        else:
            refused.append(dataset)
    if refused:
        names = " ".join(d.name for d in refused)
        raise LicenseNotAccepted(
            f"the terms of {', '.join(d.name for d in refused)} were not accepted, so nothing was "
            "downloaded; "
            f"read them above and run `biotune data fetch {names} --accept-licenses` to accept them "
            "(the acceptance is recorded in the data home's manifest); or point --data-dir (or "
            "$BIOTUNE_DATA) at a copy of BLURB you already have"
        )
    return accepted


def fetch_datasets(
    names: Iterable[str] | None = None,
    to: Path | str | None = None,
    mirror: str | Path | None = None,
    accept_licenses: bool = False,
    ask: AskAcceptance | None = None,
    settings: TransferSettings | None = None,
    progress: FetchProgress | None = None,
    upstream: str | None = None,
) -> FetchReport:
    """Fetch the named datasets (all 13 by default) into the data home; see the module docstring.

    Files already verified are kept and nothing is downloaded for them. A file that cannot be had (404,
    refused by its checks) is a failure in the report and the others go on; a source that stops answering
    (timeouts, connection errors, 5xx after the retries) raises FetchError. `upstream` replaces the host
    of the pinned URLs (default $BIOTUNE_DATA_UPSTREAM, else raw.githubusercontent.com).
    """
    started = time.monotonic()
    wanted = list(dict.fromkeys(source_for(name).name for name in names)) if names else list(SOURCES)
    datasets = [SOURCES[name] for name in wanted]
    home, chosen_by = fetch_home(to)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the data home {home} ({exc}); choose another with --to DIR") from exc
    chosen_mirror = resolve_mirror(mirror)
    progress = progress or FetchProgress()
    settings = settings or TransferSettings()
    manifest = Manifest.load(home)
    report = FetchReport(home=home, home_chosen_by=chosen_by)

    todo: dict[str, list[SourceFile]] = {}
    for dataset in datasets:
        missing = [f for f in dataset.files if not _is_verified(home, f, manifest)]
        for file in dataset.files:
            if file not in missing:
                how = manifest.files.get(file.path, {}).get("verified_by", "sha256")
                report.outcomes.append(FileOutcome(dataset.name, file.path, KEPT, verified_by=how))
        if missing:
            todo[dataset.name] = missing
    pending = [SOURCES[name] for name in todo]
    report.accepted = _gate_terms(pending, manifest, accept_licenses, ask, progress)
    for name, how in report.accepted.items():
        manifest.record_license(name, SOURCES[name].terms, how)
    if report.accepted:
        _save(manifest)

    fetcher = _Fetcher(home, manifest, chosen_mirror, upstream, settings, progress, report)
    try:
        for name, files in todo.items():
            for outcome in fetcher.fetch_dataset(name, files):
                report.outcomes.append(outcome)
                progress.file_finished(outcome)
    finally:
        _remove_empty_partials(home)
    report.outcomes.sort(key=lambda o: (wanted.index(o.dataset), o.path))
    report.seconds = time.monotonic() - started
    return report


def _save(manifest: Manifest) -> None:
    try:
        manifest.save()
    except OSError as exc:
        raise FetchError(
            f"cannot write {manifest.path} ({exc}): the data home is not writable; "
            "choose another with --to DIR"
        ) from exc


def _check_writable(home: Path, file: SourceFile) -> None:
    partial = _partial_path(home, file.path)
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(
            f"{file.path}: cannot write into the data home {home} ({exc}); choose a writable one with "
            "--to DIR or $BIOTUNE_DATA"
        ) from exc


def _remove_empty_partials(home: Path) -> None:
    """Drop the partial folder once it holds no bytes worth resuming from."""
    root = home / PARTIAL_DIR
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()
    if not any(path.is_file() for path in root.rglob("*")):
        shutil.rmtree(root, ignore_errors=True)
