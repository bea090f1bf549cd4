"""The data home's manifest: what `data fetch` placed (sha256, size, source) and which terms were accepted.

`biotune-manifest.json` sits at the top of the data home. It lets `data check` tell a file that is still
what was fetched ("verified") from one edited or damaged since ("changed"), and it is where a file with no
pinned hash (EBM PICO train, verified by its BLURB count) gets its hash recorded on first fetch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from biotune.data.sources import file_source
from biotune.errors import DataError

MANIFEST_NAME = "biotune-manifest.json"
MANIFEST_VERSION = 1

VERIFIED, UNVERIFIED, CHANGED = "verified", "unverified", "changed"


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # plain open: the umask sets the mode
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass
class Manifest:
    home: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    licenses: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.home / MANIFEST_NAME

    @classmethod
    def load(cls, home: Path) -> Manifest:
        path = home / MANIFEST_NAME
        if not path.is_file():
            return cls(home)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files, licenses = dict(data["files"]), dict(data["licenses"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                path,
                None,
                f"the data home's manifest cannot be read ({exc})",
                "delete it and run `biotune data fetch` again: every file is re-verified against its "
                "pinned sha256 and only missing or changed files are downloaded",
            ) from exc
        return cls(home, files, licenses)

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION, "files": self.files, "licenses": self.licenses}
        write_atomically(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def record_file(self, path: str, sha256: str, size: int, verified_by: str, source: str) -> None:
        self.files[path] = {
            "sha256": sha256,
            "bytes": size,
            "verified_by": verified_by,
            "source": source,
            "fetched_at": now(),
        }

    def record_license(self, dataset: str, terms: str, accepted_by: str) -> None:
        self.licenses[dataset] = {"terms": terms, "accepted_by": accepted_by, "accepted_at": now()}

    def expected_sha256(self, path: str) -> str | None:
        """The pinned hash, else the one recorded when a file without a pinned hash was fetched."""
        source = file_source(path)
        if source is not None and source.sha256 is not None:
            return source.sha256
        recorded = self.files.get(path)
        return recorded["sha256"] if recorded else None


@dataclass(frozen=True)
class HashStatus:
    status: str  # verified, unverified (nothing to compare with) or changed
    sha256: str
    note: str | None = None


def hash_status(home: Path, path: str, manifest: Manifest) -> HashStatus:
    """Compare a present file (data-home-relative `path`) with its pinned or recorded sha256."""
    actual = sha256_of(home / path)
    expected = manifest.expected_sha256(path)
    if expected is None:
        note = "no pinned sha256 and not fetched by biotune: `biotune data fetch` verifies it and records one"
        return HashStatus(UNVERIFIED, actual, note)
    if actual == expected:
        return HashStatus(VERIFIED, actual)
    if path in manifest.files:
        when = manifest.files[path].get("fetched_at", "?")
        note = f"changed since it was fetched ({when}): `biotune data fetch` puts the verified copy back"
    else:
        note = "differs from the pinned sha256 (data/SOURCES.md): `biotune data fetch` replaces it"
    return HashStatus(CHANGED, actual, note)
