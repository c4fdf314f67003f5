"""What every command-line shell shares: its consoles, the ``--seed`` option, and a guard that
keeps library output off stdout.

The ``mecharena`` command and its sub-apps (``negotiate``, the other modules of this package) make
their consoles and seed options here, so one rule holds everywhere:

* Output that is not a terminal (a pipe, a file, a captured subprocess) is never cut to 80
  columns: ids printed in a table are whole and can be pasted into the next command.
* A seed given on the command line is an integer in [0, 2^63 - 1] (:data:`mecharena.core.config.Seed`);
  anything else is one error line naming the option and the value, and exit status 2.
* With ``--json`` stdout holds the JSON alone; what a library prints while a command runs goes
  to stderr (:func:`stdout_to_stderr`).
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mecharena.core.config import check_seed
from mecharena.core.errors import MechArenaError

#: Width of output that is not a terminal: our tables fit whole (long prose cells wrap at words).
PIPE_WIDTH = 200


class ShellConsole(Console):
    """A rich console that is as wide as its terminal, or :data:`PIPE_WIDTH` when it writes to
    something else (decided at each print, so a redirected stdout is seen)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]


def make_console(stderr: bool = False) -> Console:
    """The console of a command's output (``stderr=False``) or of its errors and progress."""
    return ShellConsole(stderr=stderr)


def fail(exc: Exception, console: Console | None = None) -> typer.Exit:
    """Print ``error: MESSAGE`` (no traceback) on stderr and return the exit (status 2) to raise."""
    (console or make_console(stderr=True)).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                                                  markup=True, soft_wrap=True)
    return typer.Exit(2)


def exit_with(command: Any, *args: Any, console: Console, **kwargs: Any) -> None:
    """Run a plain command function (it prints to ``console`` and returns an exit code) and exit with its
    code; its :class:`MechArenaError` becomes one error line and status 2."""
    try:
        code = command(*args, console=console, **kwargs)
    except MechArenaError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


def _seed_callback(ctx: typer.Context, param: Any, value: int | None) -> int | None:
    if value is None or ctx.resilient_parsing:
        return value
    name = next((o for o in getattr(param, "opts", ()) if o.startswith("--")), "--seed")
    try:
        return check_seed(value, name)
    except MechArenaError as exc:
        raise fail(exc) from None


def seed_option(help: str = "root seed", name: str = "--seed") -> Any:  # noqa: A002 (typer's own keyword)
    """A typer option for a seed: an integer in [0, 2^63 - 1], or one error line and exit 2."""
    return typer.Option(name, help=f"{help}, an integer in [0, 2^63 - 1]", callback=_seed_callback)


#: The ``--seed`` option of every command (``seed: SeedOption = 0``).
SeedOption = Annotated[int, seed_option()]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout inside the block to stderr: Python's ``sys.stdout`` and,
    where stdout is a real file descriptor, fd 1 itself (what C extensions and subprocesses write).

    Libraries such as TRL print their training logs on stdout; a command's ``--json`` output must
    be the only thing there.
    """
    sys.stdout.flush()
    try:
        fd, target = sys.stdout.fileno(), sys.stderr.fileno()
        saved = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # a captured stream (tests): Python-level only
        fd = target = saved = None
    try:
        if fd is not None:
            sys.stderr.flush()
            os.dup2(target, fd)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if fd is not None:
            sys.stdout.flush()
            os.dup2(saved, fd)
            os.close(saved)


def progress_bar(console: Console, label: str = "{task.description}", *, hidden: bool = False) -> Progress:
    """The progress display of every long command: label, bar, done/total, elapsed time and ETA, on
    ``console`` (stderr) when it is a terminal; gone when finished."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, transient=True, disable=hidden or not console.is_terminal)
