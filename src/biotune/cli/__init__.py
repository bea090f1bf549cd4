"""Command line: a thin typer layer over the Python API (parse, call, print).

Each command lives in its own module here and registers itself on `app`; `main` turns a
`BiotuneError` into one clear message and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from biotune.cli.app import app, err_console
from biotune.errors import BiotuneError

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module.startswith("cmd_"):
        importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    try:
        app()
    except BiotuneError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)


__all__ = ["app", "main"]
