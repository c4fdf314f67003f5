"""The AI-agent service marketplace use case: what a service agent can extract from each design, found by search.

The mechanism is the built-in ``service`` (src/mecharena/mechanisms/service.py): customers post tasks at a
posted price, service agents propose, payment waits in escrow, disputes are refunded or audited, and strikes
carry across rounds. For each design in :data:`~mecharena.mechanisms.service.DESIGNS` the discovery engine's
policy search (:func:`mecharena.fuzz.policy_search.policy_search`) looks for the best strategy of one agent
among honest ones, over everything an agent can do (propose or not, effort, haste, fake disputes through
sock-puppet customers) as a function of what it sees (its strikes and tasks, the round); no attack is named.
The table reports the gain it found (per round, re-evaluated on a fresh seed, 95% interval), what the found
strategy does, and what each design costs honest agents, customers and the platform (paired market by
market: the same agents, customers and draws under every design).

Run it as a script to print the tables of docs/usecases.md::

    .venv/bin/python examples/usecases/service_marketplace.py 0   # seed 0, about three minutes
"""

import argparse
import sys
from typing import Any

import numpy as np

from mecharena.fuzz.policy_search import policy_search
from mecharena.mechanisms.service import DESIGNS
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import ci_table, format_ci, mean_ci, ratio_ci
from mecharena.sim.loop import play

AGENTS, ROUNDS = 4, 20
VALUES = "uniform:persistent=true"  # an agent's certified skill lasts the episode
HONEST = "truthful"  # the honest plan: propose, full effort, no haste, no puppets
METRICS = ("welfare", "customer", "profit", "revenue", "top_share")


def cell(design: str, population: str = f"{HONEST}:{AGENTS}", **fields: Any) -> Cell:
    return Cell(mechanism="service", config=DESIGNS[design], population=population, values=VALUES, rounds=ROUNDS,
                **fields)


def behaviour(design: str, spec: str, *, markets: int, seed: int) -> dict[str, float]:
    """What seat 0 playing ``spec`` among honest agents does, per round, and what it does to its rivals."""
    records = list(play(cell(design, f"{spec}:1,{HONEST}:{AGENTS - 1}", markets=markets, seed=seed).episode(),
                        ROUNDS))
    listed = np.stack([r.bids[:, 0] > 0 for r in records])
    won = np.stack([r.events["won"] for r in records])

    def per_listed(x: Any) -> float:
        return float(np.where(listed, x, 0.0).sum() / max(listed.sum(), 1))

    return {"listed": float(listed.mean()),
            "effort": per_listed(np.stack([r.actions["quality"][:, 0] for r in records])),
            "haste": per_listed(np.stack([r.actions["haste"][:, 0] for r in records])),
            "fakes": per_listed(np.stack([r.events["fakes"][:, 0] for r in records])),
            "task_share": float(won[:, :, 0].sum() / max(won.sum(), 1)),
            "rivals_suspended": float(np.mean([r.events["suspended"][:, 1:].mean() for r in records]))}


def per_market(design: str, *, markets: int, seed: int) -> dict[str, Any]:
    """(B,) sums over the episode of the honest population, per market."""
    rows: dict[str, list[Any]] = {k: [] for k in ("welfare", "max_welfare", "customer", "profit", "revenue", "tasks",
                                                  "top")}
    for r in play(cell(design, markets=markets, seed=seed).episode(), ROUNDS):
        won = r.events["won"]
        rows["welfare"].append(r.outcome.welfare)
        rows["max_welfare"].append(r.outcome.max_welfare)
        rows["customer"].append(r.events["customer"].sum(axis=1))
        rows["profit"].append(r.utility.sum(axis=1))
        rows["revenue"].append(r.outcome.revenue)
        rows["tasks"].append(won.sum(axis=1))
        rows["top"].append(np.take_along_axis(won, np.argmax(r.values, axis=1)[:, None], 1)[:, 0])
    return {k: np.sum(v, axis=0) for k, v in rows.items()}


def _unit(data: dict[str, Any], name: str) -> Any:
    key = {"top_share": "top"}.get(name, name)
    return (data[key] / np.maximum(data["tasks"], 1.0))[None]  # (1, B): markets are the units


def use_case_table(designs: tuple[str, ...] = tuple(DESIGNS), *, generations: int = 60, markets: int = 300,
                   eval_markets: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Search every design, describe the found strategies, and measure honest outcomes and the repair's cost.

    Returns:
        ``{"found": {design: {"gain", "spec", "behaviour"}}, "metrics": {design: {metric: mean_ci}},
        "costs": {"repaired - DESIGN": {metric: paired mean_ci}}, "settings": {...}}``; metrics are per task.
    """
    found, data, metrics = {}, {}, {}
    for design in designs:
        result = policy_search(cell(design), seed=seed, generations=generations, markets=markets,
                               eval_markets=eval_markets)
        spec = result.deviation.agent_spec
        found[design] = {"gain": {"mean": result.fresh.mean, "ci95": [result.fresh.lo, result.fresh.hi]},
                         "spec": spec, "behaviour": behaviour(design, spec, markets=eval_markets, seed=seed + 1)}
        data[design] = per_market(design, markets=eval_markets, seed=seed + 1)
        metrics[design] = {**{name: mean_ci(_unit(data[design], name)) for name in METRICS},
                           "efficiency": ratio_ci(data[design]["welfare"][None], data[design]["max_welfare"][None])}
    costs = {f"repaired - {base}": {name: mean_ci(_unit(data["repaired"], name) - _unit(data[base], name))
                                    for name in METRICS}
             for base in designs if base != "repaired" and "repaired" in designs}
    settings = {"agents": AGENTS, "rounds": ROUNDS, "values": VALUES, "generations": generations,
                "markets": markets, "eval_markets": eval_markets, "seed": seed}
    return {"found": found, "metrics": metrics, "costs": costs, "settings": settings}


NAMES = {"welfare": "welfare per task", "customer": "customer surplus per task", "profit": "agents' profit per task",
         "revenue": "platform revenue per task", "top_share": "share of tasks won by the most skilled agent",
         "efficiency": "efficiency (welfare / first best)"}


def markdown(table: dict[str, Any]) -> str:
    designs = list(table["found"])
    found = table["found"]
    lines = ["| design | config | gain found (per round) | effort | haste | puppet tasks | task share | "
             "rivals suspended |", "|---|---|---|---|---|---|---|---|"]
    for design in designs:
        b = found[design]["behaviour"]
        config = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in DESIGNS[design].items())
        lines.append(f"| {design} | {config} | {format_ci(found[design]['gain'])} | {b['effort']:.2f} | "
                     f"{b['haste']:.2f} | {b['fakes']:.2f} | {b['task_share']:.2f} | {b['rivals_suspended']:.2f} |")
    lines += ["", *ci_table("honest agents", {d: d for d in designs}, NAMES,
                            lambda design, name: table["metrics"][design][name])]
    if table["costs"]:
        lines += ["", *ci_table("cost of the repair (paired, honest agents)", {p: f"`{p}`" for p in table["costs"]},
                                {name: NAMES[name] for name in METRICS}, lambda pair, name: table["costs"][pair][name],
                                digits=4)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="print the service marketplace's before/after tables")
    parser.add_argument("seed", type=int, nargs="?", default=0)
    args = parser.parse_args(argv)
    print(markdown(use_case_table(seed=args.seed)))


if __name__ == "__main__":
    sys.exit(main())
