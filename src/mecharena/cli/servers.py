"""``mecharena serve | ui | mcp`` and the ``negotiate`` group: the servers and the bargaining economy's commands."""

from pathlib import Path
from typing import Annotated

import typer

from mecharena.cli.options import fail
from mecharena.core.errors import ConfigError, MechArenaError

commands = typer.Typer()


@commands.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", help="seconds before an idle session ends")] = 300.0,
    max_sessions: Annotated[int, typer.Option("--max-sessions", help="concurrent sessions at most")] = 64,
    stage: Annotated[int, typer.Option("--stage", help="stage of sessions that name none")] = 1,
    policy_files: Annotated[bool, typer.Option(
        "--policy-files", help="let /api/design read constant:FILE, learned:FILE and llm:CONFIG policies from "
                               "files under the working directory")] = False,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="MECHARENA_TOKEN", show_envvar=True,
        help="bearer token every request must send (Authorization: Bearer TOKEN); required off loopback")] = None,
) -> None:
    """Serve the referee environment: OpenEnv (WebSocket /ws), session HTTP API (/api/sessions), /api/design."""
    from mecharena.server.app import run_server

    try:
        run_server(host, port, idle_timeout, max_sessions, stage=stage, policy_files=policy_files, token=token)
    except MechArenaError as exc:
        raise fail(exc) from None


def _negotiate_app() -> typer.Typer:
    from mecharena.llm.negotiator import make_negotiation_policy
    from mecharena.cli import negotiation as commands

    commands.policy_factory = make_negotiation_policy  # `negotiate play --policy llm:CONFIG`
    return commands.app


commands.add_typer(_negotiate_app(), name="negotiate",
                   help="The scarce-GPU bargaining economy: baselines, episodes, SFT data (docs/negotiation.md).")


@commands.command("ui")
def ui(
    runs: Annotated[Path, typer.Option("--runs", help="directory of run directories (each with results.duckdb)")] = Path(
        "runs"),
    exploits: Annotated[Path, typer.Option("--exploits", help="exploit library directory")] = Path("exploits"),
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8050,
) -> None:
    """The web dashboard: runs and their progress, comparisons, the exploit library, a live referee episode."""
    from mecharena.server.ui import run

    if not 0 < port < 65536:
        raise fail(ConfigError(f"port must be in 1..65535, got {port}"))
    try:
        run(runs, exploits, host, port)
    except MechArenaError as exc:
        raise fail(exc) from None


@commands.command("mcp")
def mcp(
    transport: Annotated[str, typer.Option("--transport", help="stdio or http (streamable HTTP)")] = "stdio",
    host: Annotated[str, typer.Option("--host", help="address to listen on (http)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (http)")] = 8765,
    library: Annotated[Path, typer.Option("--library", help="exploit library the tools read and write")] = Path(
        "exploits"),
) -> None:
    """An MCP server: list_mechanisms, simulate, fuzz, evaluate_designer and exploits as tools."""
    from mecharena.server.mcp import run

    if transport not in ("stdio", "http") or not 0 < port < 65536:
        raise fail(ConfigError(f"--transport must be stdio or http and port in 1..65535, got {transport!r}, {port}"))
    try:
        run(transport, host, port, library=library)
    except MechArenaError as exc:
        raise fail(exc) from None
