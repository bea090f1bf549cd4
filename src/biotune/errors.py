"""Errors a user can act on: each says where (file, line) and what to change."""

from __future__ import annotations

from pathlib import Path


class BiotuneError(Exception):
    """Base class: the CLI prints these as one clear message, never as a traceback."""


class ConfigError(BiotuneError):
    """A configuration value or combination is invalid; raised before any work starts."""


class DataError(BiotuneError):
    """A data file is malformed. The message names the file, the line (1-based) and the fix."""

    def __init__(self, path: str | Path, line: int | None, problem: str, fix: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.fix = fix
        where = f"{self.path}:{line}" if line is not None else self.path
        message = f"{where}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)


class RunFileError(DataError, ConfigError):
    """A run folder's file (results.json, biotune_model.json) is missing, malformed or from a newer biotune.

    A malformed input file like any other (file, line, fix), and a ConfigError where callers have always
    caught one for a bad run folder."""


class TrainingDiverged(BiotuneError):
    """A seed's loss became NaN/inf; the seed is recorded as failed and the others go on."""
