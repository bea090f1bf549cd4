"""Names from configs and stores (study, run, dataset, run folders) must stay inside the output folder.

A study file, a copied SQLite store or a model card may come from anyone; a name such as `../x`, `/etc`
or `a/../../b` taken from one must never make biotune write, or delete, outside the folder it was given.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from biotune.errors import ConfigError

# A Windows drive or UNC prefix is an absolute path there even though POSIX reads it as a plain name.
_WINDOWS_ROOT = re.compile(r"^(?:[A-Za-z]:|[\\/]{2})")


class UnsafePathError(ConfigError):
    """A name would reach outside the folder it belongs in."""


def _refuse(what: str, name: str, parent: Path | None, why: str) -> UnsafePathError:
    inside = f" inside {parent}" if parent is not None else ""
    return UnsafePathError(
        f"{what} {name!r} is not a safe name{inside}: {why}; "
        "use a plain relative name (letters, digits, - _ .)"
    )


def _check_relative(name: str, what: str, parent: Path | None) -> tuple[str, ...]:
    if not name or not name.strip():
        raise _refuse(what, name, parent, "it is empty")
    if "\x00" in name:
        raise _refuse(what, name, parent, "it holds a NUL character")
    if name.startswith(("/", "\\")) or _WINDOWS_ROOT.match(name):
        raise _refuse(what, name, parent, "it is an absolute path")
    if name.startswith("~"):
        raise _refuse(what, name, parent, "it starts at a home folder (~)")
    # split on both separators: a store written on Windows may hold `..\\x`
    parts = PureWindowsPath(name).parts if "\\" in name else PurePosixPath(name).parts
    if ".." in parts:
        raise _refuse(what, name, parent, "it climbs out with '..'")
    return tuple(part for part in parts if part not in ("", "."))


def safe_name(name: str, what: str = "name") -> str:
    """A single path component (a study or run name): no separators, no `..`, not absolute."""
    parts = _check_relative(name, what, None)
    if "/" in name or "\\" in name:
        raise _refuse(what, name, None, "it holds a path separator")
    if not parts:
        raise _refuse(what, name, None, "it names the current folder")
    return name


def safe_child(parent: Path | str, name: str | Path, what: str = "name") -> Path:
    """`parent / name`, refused unless it stays inside `parent`, symbolic links followed.

    `name` may have several components (`runs/<id>`), never `..`, a leading `/` or `~`, or a drive.
    """
    parent = Path(parent)
    text = str(name)
    parts = _check_relative(text, what, parent)
    if not parts:
        raise _refuse(what, text, parent, "it names the folder itself, not something inside it")
    child = parent.joinpath(*parts)
    # a link already on disk (runs/x -> /elsewhere) must not carry a write outside either
    if not child.resolve().is_relative_to(parent.resolve()):
        raise _refuse(what, text, parent, "it leads through a symbolic link to another place")
    return child
