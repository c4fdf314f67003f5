"""What the top-level commands share: the output consoles, the error exit, the options that several
commands take and the parsers of their ``key=value`` lists."""

import json
from typing import Annotated, Any

import typer

from mecharena.cli.shell import exit_with, make_console
from mecharena.cli.shell import fail as shell_fail
from mecharena.core.config import parse_assignments
from mecharena.core.errors import ConfigError
from mecharena.core.settings import FuzzSettings, RepairSettings, RingSettings, description

# `err`: it would hide these consoles inside the command (tests/test_cli.py checks every command).
out = make_console()
err = make_console(stderr=True)

FUZZ, REPAIR, RING = FuzzSettings(), RepairSettings(), RingSettings()  # the defaults (mecharena.core.settings
# holds them and the bounds)


def setting(model: type, name: str) -> Any:
    """A CLI option whose help is the settings field's description."""
    return typer.Option(help=description(model, name))


ValuesOption = Annotated[str, typer.Option(help=(
    "value distribution: uniform | power:shape=2 | exponential:shape=3 | empirical:path=values.csv[,column=NAME] "
    "(a CSV of values: the first column, or the one named); add common=C for interdependent values, e.g. "
    "uniform:common=1 (a pure common value: the mean signal), and persistent=true to keep each agent's value "
    "every round of an episode"))]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="config field key=value (repeatable)")]
InfoOption = Annotated[list[str] | None, typer.Option("--info", help="information policy key=value")]
EnforceOption = Annotated[list[str] | None, typer.Option("--enforce", help="enforcement key=value")]


def fail(exc: Exception) -> typer.Exit:
    """Print the error without a traceback and exit with status 2."""
    return shell_fail(exc, err)


def parse_search(items: list[str]) -> dict[str, Any]:
    """``["listing_fee=0:0.5", "weighting=linear,sqrt"]`` -> ``{"listing_fee": (0.0, 0.5), "weighting": [...]}``."""
    space: dict[str, Any] = {}
    for item in items:
        name, eq, text = (part.strip() for part in item.partition("="))
        low, colon, high = text.partition(":")
        try:
            if not (eq and name and text):
                raise ValueError
            space[name] = (float(low), float(high)) if colon else [_value(v.strip()) for v in text.split(",")]
        except ValueError:
            raise ConfigError(f"--search expects NAME=LOW:HIGH (numbers) or NAME=A,B,C (choices), got {item!r}") \
                from None
    return space


def _value(text: str) -> Any:
    """A JSON value (number, boolean) where it parses, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_settings(items: list[str], option: str = "--set") -> dict[str, Any]:
    """``["reserve_price=0.5", "pricing=lowest_winning"]`` -> a dict; values are JSON when they parse."""
    return parse_assignments(items, lambda item: f"{option} expects key=value, got {item!r}")



def exit_here(command, *args: Any, **kwargs: Any) -> None:
    """:func:`~mecharena.cli.shell.exit_with` printing on this module's ``out``."""
    exit_with(command, *args, console=out, **kwargs)
