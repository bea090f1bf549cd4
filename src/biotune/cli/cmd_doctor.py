"""`biotune doctor`: versions, threads, data, default model, hub, GPU and Ray, to paste into an issue."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from biotune.cli.app import app


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    no_network: Annotated[
        bool, typer.Option("--no-network", help="do not try to reach the Hugging Face hub")
    ] = False,
) -> None:
    """Report what this installation sees (never fails; the hub check waits at most 3 s)."""
    from biotune.doctor import format_report, gather

    report = gather(check_hub=not no_network)
    # plain echo, not rich: no line wrapping or markup, so the text pastes into an issue unchanged
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))
