"""Command-line options generated from a pydantic config model, so flags and config cannot drift apart.

Each field of the model becomes one typer parameter: its name (`--kebab-case`), type and help (the
field's `description`) come from the field. A flag left out is None, which means "not given": the YAML
file or the model's own default then decides. How a type appears on the command line:

    int, float, str, Path     --name VALUE
    Literal[...]              --name CHOICE (typer lists and checks the choices)
    bool                      --name/--no-name
    list[str|int|float|Path]  --name VALUE, repeatable (the help says so)
    Seeds                     --seeds 3 (seeds 0,1,2) or --seeds 1,5,7

A field of any other type is a developer error at import time, naming the field, so a new config field
never silently lacks its flag.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from biotune.config import Seeds, parse_seeds

SCALAR_TYPES = (str, int, float, Path)


@dataclass(frozen=True)
class FieldFlag:
    """How one config field is given on the command line."""

    field: str
    annotation: Any  # what typer parses, always `X | None` so that "not given" is None
    parameter: typer.models.ParameterInfo
    to_config: Callable[[Any], Any]  # parsed command-line value -> config value (None stays None)

    def signature_parameter(self) -> inspect.Parameter:
        return inspect.Parameter(
            self.field,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,  # typer passes every value by name
            default=None,
            annotation=Annotated[self.annotation, self.parameter],
        )


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_seeds(info: FieldInfo) -> bool:
    seed_validators = typing.get_args(Seeds)[1:]
    return all(validator in info.metadata for validator in seed_validators)


def _shown_default(info: FieldInfo, flag: str) -> str | bool:
    """The model's default as help shows it; False where the default is None (the registry decides)."""
    default = info.get_default(call_default_factory=True)
    if default is None or default == []:
        return False
    if isinstance(default, bool):
        return flag if default else "--no-" + flag.removeprefix("--")
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    return str(default)


def _cli_form(model: type[BaseModel], name: str, info: FieldInfo) -> tuple[Any, Callable[[Any], Any]]:
    """(the type typer parses, how its value becomes the config value) for one field."""
    annotation = _without_none(info.annotation)
    origin = typing.get_origin(annotation)
    if _is_seeds(info):
        return str | None, lambda text: parse_seeds(text) if text else None
    if origin is Literal:
        values = typing.get_args(annotation)
        by_text = {str(value): value for value in values}
        choices = enum.Enum(  # type: ignore[misc]  # a functional Enum: typer shows and checks the choices
            f"{model.__name__}_{name}", {text: text for text in by_text}
        )
        return choices | None, lambda choice: None if choice is None else by_text[choice.value]
    if annotation is bool or annotation in SCALAR_TYPES:
        return annotation | None, lambda value: value
    if origin is list and typing.get_args(annotation)[0] in SCALAR_TYPES:
        # typer gives an empty list for a repeatable flag never used: that is "not given"
        return annotation | None, lambda values: list(values) if values else None
    raise TypeError(
        f"{model.__name__}.{name}: no command-line form for {info.annotation!r}; "
        "teach biotune.cli.options._cli_form this type or change the field's type"
    )


def model_flags(
    model: type[BaseModel],
    *,
    names: Mapping[str, tuple[str, ...]] | None = None,
    arguments: tuple[str, ...] = (),
) -> list[FieldFlag]:
    """One flag per field of `model`, in field order.

    `names` gives a field other spellings than `--kebab-case` (kept for flags users already type);
    `arguments` are fields taken as positional arguments.
    """
    names = names or {}
    flags = []
    for name, info in model.model_fields.items():
        annotation, to_config = _cli_form(model, name, info)
        help_text = info.description or ""
        if typing.get_origin(_without_none(annotation)) is list:
            help_text = f"repeatable: {help_text}"
        parameter: typer.models.ParameterInfo
        if name in arguments:
            parameter = typer.Argument(help=help_text, show_default=False)
        else:
            declared = names.get(name, (flag_name(name),))
            if _without_none(annotation) is bool:
                main = declared[0]
                declared = (f"{main}/--no-{main.removeprefix('--')}", *declared[1:])
            parameter = typer.Option(
                *declared, help=help_text, show_default=_shown_default(info, declared[0].split("/")[0])
            )
        flags.append(FieldFlag(name, annotation, parameter, to_config))
    return flags


def config_values(flags: list[FieldFlag], given: Mapping[str, Any]) -> dict[str, Any]:
    """The config values of the flags a user gave (None for those left out)."""
    return {flag.field: flag.to_config(given.get(flag.field)) for flag in flags}


def with_signature(
    command: Callable[..., Any], flags: list[FieldFlag], extra: list[inspect.Parameter]
) -> Callable[..., Any]:
    """Give `command(**values)` the typer signature of `flags` plus `extra` (options that are no field)."""
    parameters = [flag.signature_parameter() for flag in flags] + extra
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return command
