"""``mecharena check | mechanisms | agents | rules``: what is registered (plug-ins included) and its checks."""

import inspect
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mecharena import agents, mechanisms
from mecharena.cli.options import fail, out
from mecharena.cli.shell import JsonFlag
from mecharena.core.errors import MechArenaError

commands = typer.Typer()


@commands.command("check")
def check(mechanism: Annotated[str, typer.Argument(help="mechanism id (see `mecharena mechanisms`)", show_default=False)],
          as_json: JsonFlag = False) -> None:
    """Run check_mechanism over the mechanism's example configs: each check passed or failed (exit 1 on a failure)."""
    from mecharena.mechanisms.checker import run_checks

    try:
        report = run_checks(mechanisms.get(mechanism))
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps({"mechanism": mechanism, "source": mechanisms.REGISTRY.source(mechanism), "cases": report.cases,
                          "passed": report.passed, "checks": report.rows()}, indent=2))
    else:
        verdict = "passed" if report.passed else "FAILED"
        table = Table(title=f"check_mechanism {mechanism}: {verdict} ({report.cases} config x market size cases clean)")
        for column in ("check", "status", "rule, or the first failure"):
            table.add_column(column)
        for row in report.rows():
            style = {"passed": "green", "failed": "bold red"}.get(row["status"], "dim")
            table.add_row(row["check"], f"[{style}]{row['status']}[/]", escape(row["detail"] or row["description"]))
        out.print(table)
    if not report.passed:
        raise typer.Exit(1)


@commands.command("mechanisms")
def list_mechanisms(as_json: JsonFlag = False) -> None:
    """Every mechanism with its description, config fields and version."""
    rows = [mechanisms.describe(m) for _, m in mechanisms.REGISTRY.items()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Mechanisms", show_lines=True)
    for column in ("name", "v", "rule", "config fields (default: allowed)", "promises (default config)"):
        table.add_column(column)
    for row in rows:
        fields = "\n".join(f"{f['name']}={f['default']!r}: {f['allowed']}" for f in row["config"]) or "-"
        rule = row["summary"] + "".join(f"\n[dim]{kind}: {', '.join(x['name'] for x in row[kind])}[/]"
                                        for kind in ("state", "actions") if row[kind])
        table.add_row(row["name"], str(row["version"]), rule, fields, ", ".join(row["properties"]) or "-")
    out.print(table)



def params_fields(model) -> list[dict[str, Any]]:
    return [{"name": name, "default": info.default, "allowed": model.allowed(name),
             "description": info.description or ""} for name, info in model.model_fields.items()]


@commands.command("agents")
def list_agents(as_json: JsonFlag = False) -> None:
    """Every agent type with its rule, parameters and version (use as TYPE(name=value):COUNT)."""
    rows = [{"name": name, "version": a.version, "summary": a.summary, "adaptive": a.adaptive,
             "description": (inspect.getmodule(a.act).__doc__ or "").strip(), "params": params_fields(a.params_model)}
            for name, a in agents.REGISTRY.items()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Agent types", show_lines=True)
    for column in ("name", "v", "rule", "parameters (default: allowed)"):
        table.add_column(column)
    for row in rows:
        params = "\n".join(f"{f['name']}={f['default']!r}: {f['allowed']}" for f in row["params"]) or "-"
        table.add_row(row["name"], str(row["version"]), row["summary"] + (" (adaptive)" if row["adaptive"] else ""),
                      params)
    out.print(table)


@commands.command("rules")
def list_rules(as_json: JsonFlag = False) -> None:
    """The information policy and enforcement fields (for --info / --enforce and specs)."""
    from mecharena.sim import Enforcement, InformationPolicy

    rows = {"information": params_fields(InformationPolicy), "enforcement": params_fields(Enforcement)}
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for title, fields in rows.items():
        table = Table(title=title)
        for column in ("field", "default", "allowed", "meaning"):
            table.add_column(column)
        for f in fields:
            table.add_row(f["name"], repr(f["default"]), f["allowed"], f["description"])
        out.print(table)
