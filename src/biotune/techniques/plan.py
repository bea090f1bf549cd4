"""Parse technique specs (`freeze:4`, `llrd:0.9`, ...) into one immutable `TechniquePlan`.

Errors are ValueError (config.py calls `parse_techniques` inside a pydantic validator) and every
message says what to write instead.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STANDARD = "standard"


@dataclass(frozen=True)
class _Syntax:
    field: str
    usage: str
    example: str
    parse: Callable[[str, str], Any] | None  # None: a flag that takes no value


def _whole_number(minimum: int) -> Callable[[str, str], int]:
    def parse(value: str, usage: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{usage} takes a whole number, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"{usage} needs a value of at least {minimum}, got {number}")
        return number

    return parse


def _real_number(check: Callable[[float], bool], bounds: str) -> Callable[[str, str], float]:
    def parse(value: str, usage: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{usage} takes a number, got {value!r}") from None
        if not math.isfinite(number) or not check(number):
            raise ValueError(f"{usage} needs {bounds}, got {value}")
        return number

    return parse


# Canonical order: labels list techniques in this order whatever order the user gave.
_SYNTAX: dict[str, _Syntax] = {
    "freeze": _Syntax("freeze_layers", "freeze:K", "freeze:4", _whole_number(0)),
    "llrd": _Syntax("llrd_decay", "llrd:D", "llrd:0.9", _real_number(lambda d: 0 < d <= 1, "0 < D <= 1")),
    "reinit": _Syntax("reinit_layers", "reinit:K", "reinit:1", _whole_number(1)),
    "mixout": _Syntax(
        "mixout_probability", "mixout:P", "mixout:0.1", _real_number(lambda p: 0 <= p < 1, "0 <= P < 1")
    ),
    "pretrained-decay": _Syntax(
        "pretrained_decay",
        "pretrained-decay:L",
        "pretrained-decay:0.01",
        _real_number(lambda x: x >= 0, "L >= 0"),
    ),
    "no-bias-correction": _Syntax("bias_correction", "no-bias-correction", "no-bias-correction", None),
    "warmup": _Syntax(
        "warmup_ratio", "warmup:R", "warmup:0.1", _real_number(lambda r: 0 <= r < 1, "0 <= R < 1")
    ),
    "longer": _Syntax("epoch_factor", "longer:F", "longer:2", _real_number(lambda f: f > 1, "F > 1")),
    "early-stop": _Syntax("patience", "early-stop:P", "early-stop:3", _whole_number(1)),
}
_ALL_USAGES = ", ".join([STANDARD, *(syntax.usage for syntax in _SYNTAX.values())])


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class TechniquePlan:
    """What to change relative to standard fine-tuning; None/True means "leave as standard"."""

    freeze_layers: int | None = None
    llrd_decay: float | None = None
    reinit_layers: int | None = None
    mixout_probability: float | None = None
    pretrained_decay: float | None = None
    bias_correction: bool = True
    warmup_ratio: float | None = None
    epoch_factor: float | None = None
    patience: int | None = None

    def as_list(self) -> list[str]:
        """Canonical specs, one per technique; [] for standard. `parse_techniques` reads them back."""
        specs: list[str] = []
        for name, syntax in _SYNTAX.items():
            value = getattr(self, syntax.field)
            if syntax.parse is None:
                if value is False:
                    specs.append(name)
            elif value is not None:
                specs.append(f"{name}:{_format_number(value)}")
        return specs

    @property
    def label(self) -> str:
        """One string naming the plan, e.g. "freeze:4+reinit:1", or "standard"."""
        return "+".join(self.as_list()) or STANDARD

    @property
    def is_standard(self) -> bool:
        return not self.as_list()


def _unknown_name_message(spec: str, name: str) -> str:
    guesses = difflib.get_close_matches(name, [STANDARD, *_SYNTAX], n=1, cutoff=0.6)
    hint = ""
    if guesses:
        hint = f" Did you mean {_SYNTAX[guesses[0]].usage if guesses[0] in _SYNTAX else guesses[0]}?"
    return f"unknown technique {spec!r}.{hint} Write one of: {_ALL_USAGES}"


def _parse_one(spec: str) -> tuple[str, Any]:
    text = spec.strip().lower()
    if "+" in text:
        parts = [part for part in text.split("+") if part]
        raise ValueError(f"give one technique per entry: write {parts} instead of {spec!r}")
    name, has_value, value = (part.strip() for part in text.partition(":"))
    if name == STANDARD or name in _SYNTAX and _SYNTAX[name].parse is None:
        if has_value:
            raise ValueError(f"{name} takes no value: write {name!r} instead of {spec!r}")
        return name, None
    if name not in _SYNTAX:
        raise ValueError(_unknown_name_message(spec, name))
    syntax = _SYNTAX[name]
    if not has_value or not value:
        raise ValueError(f"{name} needs a value: write {syntax.usage}, e.g. {syntax.example!r}")
    assert syntax.parse is not None
    return name, syntax.parse(value, syntax.usage)


def parse_techniques(specs: list[str]) -> TechniquePlan:
    """Read specs like ["freeze:4", "reinit:1"] (case-insensitive) into a plan.

    [] and ["standard"] both mean standard fine-tuning. A technique given twice, or `standard`
    together with any technique, is a ValueError whose message says what to write instead.
    """
    if isinstance(specs, str):
        raise ValueError(f"give a list of techniques, e.g. [{specs!r}], not a single string")
    values: dict[str, Any] = {}
    saw_standard = False
    for spec in specs:
        if not isinstance(spec, str):
            raise ValueError(f"a technique is a string such as 'freeze:4', got {spec!r}")
        name, value = _parse_one(spec)
        if name == STANDARD:
            if saw_standard:
                raise ValueError("'standard' is given twice: give it once")
            saw_standard = True
            continue
        field = _SYNTAX[name].field
        if field in values:
            raise ValueError(f"{name} is given twice: keep one of them ({_SYNTAX[name].usage})")
        values[field] = False if _SYNTAX[name].parse is None else value
    if saw_standard and values:
        others = TechniquePlan(**values).as_list()
        raise ValueError(f"'standard' means no technique: drop it, or drop {others}")
    return TechniquePlan(**values)
