"""The ``mecharena`` command. A shell: parsing, printing and exit codes; no economics here.

One module per command group: :mod:`~mecharena.cli.catalog` (check, mechanisms, agents, rules),
:mod:`~mecharena.cli.experiments` (simulate, demo, run, report, replay), :mod:`~mecharena.cli.fuzz` (fuzz,
regress, metagame and the ``exploits`` group), :mod:`~mecharena.cli.repair` (repair, rank),
:mod:`~mecharena.cli.servers` (serve, ui, mcp and the ``negotiate`` group), and the groups ``bench``,
``designer``, ``llm`` and ``train``; :mod:`~mecharena.cli.options` holds what they share.
"""

from typing import Annotated

import typer

from mecharena.cli import bench, catalog, designer, experiments, fuzz, llm, repair, servers, train
from mecharena.cli.options import err, fail
from mecharena.core.errors import ConfigError, MechArenaError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Mechanism Arena: stress-test economic mechanisms against strategic agents.")
for module in (catalog, experiments, fuzz, repair, servers):
    app.add_typer(module.commands)
app.add_typer(bench.app, name="bench")
app.add_typer(designer.app, name="designer")
app.add_typer(llm.app, name="llm")
app.add_typer(train.app, name="train")
app.add_typer(fuzz.app, name="exploits")


def _print_version(value: bool) -> None:
    if value:
        from mecharena import __version__

        print(f"mecharena {__version__}")
        raise typer.Exit(0)


@app.callback()
def load_plugins(plugin: Annotated[list[str] | None, typer.Option(
        "--plugin", help="load a plug-in before the command: a .py file or a module defining MECHANISM(S) / "
                         "AGENT(S) / FAMILY(IES) (repeatable; MECHARENA_PLUGINS and installed entry points load "
                         "too)")] = None,
        version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                              help="print mecharena's version and exit")] = False) -> None:
    from mecharena import plugins

    try:
        plugins.activate(plugin or [])
    except MechArenaError as exc:
        raise fail(exc) from None




def main() -> None:
    """The ``mecharena`` command: the Typer app, with usage errors (an unknown command or option, a
    value of the wrong type) on one ``error:`` line like every other error, status 2."""
    try:
        code = app(standalone_mode=False, prog_name="mecharena")
    except Exception as exc:  # click's classes, matched by name: Typer may vendor its own click
        kinds = {kind.__name__ for kind in type(exc).__mro__}
        if "Abort" in kinds:
            err.print("aborted")
            raise SystemExit(130) from None
        if "ClickException" not in kinds:
            raise
        if "NoArgsIsHelpError" in kinds:  # the help is already shown
            raise SystemExit(exc.exit_code) from None
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if "UsageError" in kinds and ctx is not None else ""
        raise SystemExit(fail(ConfigError(exc.format_message() + where)).exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
