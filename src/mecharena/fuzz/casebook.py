"""A casebook of failure modes: for each adversary of DESIGN.md, a mechanism built to be vulnerable
to it and a variant that closes it. ``python -m mecharena.fuzz.casebook`` fuzzes every case and
prints the table in ``docs/fuzzing.md``; the tests assert its directions.
"""

import sys
from dataclasses import dataclass, field
from typing import Any

from mecharena.core.errors import ConfigError
from mecharena.fuzz.search import fuzz
from mecharena.metrics.harness import Cell


@dataclass(frozen=True)
class Case:
    mode: str  # the failure mode
    family: str
    vulnerable: dict[str, Any]  # Cell fields
    closed: dict[str, Any]
    why_closed: str
    deviators: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


CASES = (
    Case("bid shading", "shading", {"mechanism": "first_price", "population": "truthful:5"},
         {"mechanism": "second_price", "population": "truthful:5"}, "second price: truthful bidding is dominant"),
    Case("reserve sniping", "reserve_sniping",
         {"mechanism": "first_price", "config": {"reserve_price": 0.5}, "population": "truthful:3"},
         {"mechanism": "second_price", "config": {"reserve_price": 0.5}, "population": "truthful:3"},
         "second price: a lone bidder pays the reserve whatever it bids"),
    Case("bid rotation / knockout ring", "rotation", {"mechanism": "second_price", "population": "truthful:4",
                                                      "information": {"winner_identity": True}},
         {"mechanism": "second_price", "population": "truthful:4", "information": {"winner_identity": True},
          "enforcement": {"audit_probability": 1.0, "collusion_penalty": 1.0}},
         "every market audited, colluders fined 1", deviators=2),
    Case("sybil splitting", "sybil", {"mechanism": "posted_price", "config": {"price": 0.3}, "population": "truthful:4"},
         {"mechanism": "posted_price", "config": {"price": 0.3}, "population": "truthful:4",
          "enforcement": {"audit_probability": 1.0, "shill_penalty": 1.0}}, "audits with a shill penalty"),
    Case("strategic exit", "exit",
         {"mechanism": "second_price", "config": {"entry_fee": 0.1}, "population": "truthful:4"},
         {"mechanism": "second_price", "population": "truthful:4"}, "no entry fee: taking part never loses money"),
    Case("budget attack", "budget", {"mechanism": "first_price", "population": "truthful:4"},
         {"mechanism": "second_price", "population": "truthful:4"},
         "second price: overbidding within a budget cannot beat truthful bidding"),
    Case("misreporting (two-sided)", "misreport",
         {"mechanism": "k_double", "config": {"buyers": 3}, "population": "truthful:6"},
         {"mechanism": "mcafee", "config": {"buyers": 3}, "population": "truthful:6"},
         "McAfee trade reduction: truthful reports are dominant"),
    Case("free riding", "free_riding", {"mechanism": "vcm", "config": {"mpcr": 0.5}, "population": "conditional:4"},
         {"mechanism": "vcm", "config": {"mpcr": 1.5}, "population": "conditional:4"},
         "MPCR > 1: every unit contributed returns more than it costs"),
    Case("audit evasion", "audit_evasion",
         {"mechanism": "posted_price", "config": {"price": 0.3}, "population": "truthful:4",
          "enforcement": {"audit_probability": 0.05, "shill_penalty": 0.2}},
         {"mechanism": "posted_price", "config": {"price": 0.3}, "population": "truthful:4",
          "enforcement": {"audit_probability": 1.0, "shill_penalty": 1.0}}, "certain audits, higher fine"),
    Case("time sniping", "time_sniping", {"mechanism": "cda", "config": {"buyers": 1}, "population": "truthful:4"},
         {"mechanism": "k_double", "config": {"buyers": 1}, "population": "truthful:4"},
         "a call market has no order timing to exploit"),
)


def run_case(case: Case, variant: str, *, budget: int, seed: int) -> dict[str, Any]:
    """Fuzz one side of a case; a family that cannot be played there counts as no exploit."""
    cell = Cell(**getattr(case, variant))
    try:
        result = fuzz(cell, families=[case.family], deviators=case.deviators, budget=budget, seed=seed,
                      markets=400, rounds=8, eval_markets=2000, min_trials=6)
    except ConfigError as exc:
        return {"exploitability": {"mean": 0.0, "ci95": [0.0, 0.0]}, "best": None, "note": str(exc)}
    return {"exploitability": result.exploitability, "best": result.as_dict()["best"], "note": ""}


def table(budget: int = 30, seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    for case in CASES:
        rows.append({"mode": case.mode, "family": case.family, "case": case,
                     "vulnerable": run_case(case, "vulnerable", budget=budget, seed=seed),
                     "closed": run_case(case, "closed", budget=budget, seed=seed)})
    return rows


def _cell_text(fields: dict[str, Any]) -> str:
    parts = [fields["mechanism"]]
    parts += [f"{k}={v}" for k, v in fields.get("config", {}).items()]
    parts += [f"{k}={v}" for k, v in {**fields.get("information", {}), **fields.get("enforcement", {})}.items()]
    return " ".join(parts) + f", {fields['population']}"


def markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(side: dict[str, Any]) -> str:
        e = side["exploitability"]
        return f"{e['mean']:.4f} [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]"

    lines = [("| failure mode | family | vulnerable mechanism | exploitability (95% CI) | closing variant | "
              "exploitability (95% CI) |"), "|---|---|---|---|---|---|"]
    for row in rows:
        case = row["case"]
        lines.append(f"| {row['mode']} | `{row['family']}` (K={case.deviators}) | {_cell_text(case.vulnerable)} | "
                     f"{fmt(row['vulnerable'])} | {_cell_text(case.closed)} ({case.why_closed}) | {fmt(row['closed'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(table(budget=int(sys.argv[1]) if len(sys.argv) > 1 else 30)))
