"""The typer application objects; command modules in this package register on them."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="biotune",
    help="Stable fine-tuning of transformer encoders on biomedical NLP (BLURB).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Fetch, inspect and validate data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)


def quiet_transformers() -> None:
    """Per-load progress bars and "newly initialized head" reports would bury the command's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
