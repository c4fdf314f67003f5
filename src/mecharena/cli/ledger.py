"""Plain functions behind the ``mecharena ledger ...`` commands: print, return an exit code.

They raise :class:`~mecharena.core.errors.MechArenaError` on bad input and leave turning it
into a message and exit status 2 to the CLI shell.
"""

import json

from rich.console import Console
from rich.table import Table

from mecharena.ledger.replay import ReplayReport, replay
from mecharena.cli.shell import make_console

SHOWN_MISMATCHES = 20


def replay_command(directory: str, as_json: bool, console: Console | None = None) -> int:
    """Replay the ledger in ``directory`` and print the report.

    Args:
        directory: the ledger directory.
        as_json: print one JSON object instead of tables.
        console: where rich tables go (default: a new stdout console).

    Returns:
        0 when every recorded outcome was reproduced exactly, 1 on any mismatch.

    Raises:
        MechArenaError: missing or corrupt ledger, or one recorded in aggregate mode.
    """
    report = replay(directory)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render(report, console or make_console())
    return 0 if report.ok else 1


def render(report: ReplayReport, console: Console) -> None:
    """A summary table and, if any, the first mismatches."""
    verdict = "[bold green]all outcomes reproduced exactly[/]" if report.ok else \
        f"[bold red]{report.mismatch_count} recorded values differ[/]"
    summary = Table(title=f"Replay of {report.directory}", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("mechanism", f"{report.mechanism} v{report.mechanism_version}")
    summary.add_row("ledger status", report.status)
    summary.add_row("rounds", str(report.rounds))
    summary.add_row("market-rounds", str(report.market_rounds))
    summary.add_row("events", str(report.events))
    summary.add_row("mismatches", str(report.mismatch_count))
    console.print(summary)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if report.mismatches:
        table = Table(title=f"First {min(len(report.mismatches), SHOWN_MISMATCHES)} mismatches")
        for column in ("round", "market", "seat", "field", "recorded", "replayed"):
            table.add_column(column, justify="right" if column not in ("field",) else "left")
        for m in report.mismatches[:SHOWN_MISMATCHES]:
            table.add_row(str(m.round), "-" if m.market is None else str(m.market), "-" if m.seat is None else str(m.seat),
                          m.field, repr(m.recorded), repr(m.replayed))
        console.print(table)
    console.print(verdict)
