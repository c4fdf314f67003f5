"""The reputation marketplace use case: what a seller can extract from each scoring rule, found by search.

The mechanism is the built-in ``reputation`` (src/mecharena/mechanisms/reputation.py): sellers price
and choose a hidden quality each round, buyers rate, and the rule's scores carry across rounds. For
each rule in :data:`~mecharena.mechanisms.reputation.RULES` the discovery engine's policy search
(:func:`mecharena.fuzz.policy_search.policy_search`) looks for the best strategy of one seller among
honest ones, over everything a seller can do (price, quality, re-entry under a fresh identity, fake
reviews) as a function of what it sees (its own score and evidence, the round, the market's
announcements); no attack is named. The table reports the gain it found (per round, re-evaluated on a
fresh seed, 95% interval), what the found strategy does, and what each rule costs honest sellers and
buyers (paired market by market: the same sellers, buyers and ratings under every rule).

Run it as a script to print the tables of docs/usecases.md::

    .venv/bin/python examples/usecases/reputation_marketplace.py 0   # seed 0, about two minutes
"""

import argparse
import sys
from typing import Any

import numpy as np

from mecharena.fuzz.policy_search import policy_search
from mecharena.mechanisms.reputation import RULES
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import ci_table, format_ci, mean_ci, ratio_ci
from mecharena.sim.loop import play

SELLERS, ROUNDS = 4, 20
VALUES = "uniform:persistent=true"  # a seller's quality type lasts the episode
HONEST = "truthful"  # the honest plan: full quality, one identity, no fake reviews, the myopic price
METRICS = ("welfare", "buyer_welfare", "trades", "seller_profit")


def cell(rule: str, population: str = f"{HONEST}:{SELLERS}", **fields: Any) -> Cell:
    return Cell(mechanism="reputation", config=RULES[rule], population=population, values=VALUES, rounds=ROUNDS,
                **fields)


def behaviour(rule: str, spec: str, *, markets: int, seed: int) -> dict[str, float]:
    """What seat 0 playing ``spec`` among honest sellers does, per round it is listed."""
    records = list(play(cell(rule, f"{spec}:1,{HONEST}:{SELLERS - 1}", markets=markets, seed=seed).episode(), ROUNDS))
    listed = np.stack([r.bids[:, 0] > 0 for r in records])
    theta = np.clip(np.stack([r.values[:, 0] for r in records]), 0.0, 1.0)

    def per_listing(x: Any) -> float:
        return float(np.where(listed, x, 0.0).sum() / max(listed.sum(), 1))

    return {"listed": float(listed.mean()),
            "effort": per_listing(np.stack([r.actions["quality"][:, 0] for r in records])),
            "price_share": per_listing(np.stack([r.bids[:, 0] for r in records])),
            "reentries": float(np.stack([r.actions["reenter"][:, 0] for r in records])[1:][listed[1:]].sum()
                               / markets),
            "fakes": per_listing(np.stack([r.events["fakes"][:, 0] for r in records])),
            "score_gap": per_listing(np.stack([r.next_state["score"][:, 0] for r in records]) - theta)}


def per_market(rule: str, *, markets: int, seed: int) -> dict[str, Any]:
    """(B,) sums over the episode of the honest population, per market."""
    rows: dict[str, list[Any]] = {k: [] for k in ("welfare", "buyer", "trades", "quality", "error", "profit",
                                                  "listings")}
    for r in play(cell(rule, markets=markets, seed=seed).episode(), ROUNDS):
        listed = r.bids > 0
        rows["welfare"].append(r.outcome.welfare)
        rows["buyer"].append(r.events["buyer"].sum(axis=1))
        rows["trades"].append(r.events["sold"].sum(axis=1))
        rows["quality"].append(r.events["quality"].sum(axis=1))
        rows["error"].append(np.where(listed, np.abs(r.events["shown"] - np.clip(r.values, 0, 1)), 0.0).sum(axis=1))
        rows["profit"].append(r.utility.sum(axis=1))
        rows["listings"].append(listed.sum(axis=1).astype(float))
    return {k: np.sum(v, axis=0) for k, v in rows.items()}


def _unit(data: dict[str, Any], name: str) -> Any:
    key = {"buyer_welfare": "buyer", "seller_profit": "profit"}.get(name, name)
    return (data[key] / np.maximum(data["listings"], 1.0))[None]  # (1, B): markets are the units


def use_case_table(rules: tuple[str, ...] = tuple(RULES), *, generations: int = 80, markets: int = 300,
                   eval_markets: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Search every rule, describe the found strategies, and measure honest outcomes and the repair's cost.

    Returns:
        ``{"found": {rule: {"gain", "spec", "behaviour"}}, "metrics": {rule: {metric: mean_ci}},
        "costs": {"repaired - RULE": {metric: paired mean_ci}}, "settings": {...}}``; metrics are per
        listing and round.
    """
    found, data, metrics = {}, {}, {}
    for rule in rules:
        result = policy_search(cell(rule), seed=seed, generations=generations, markets=markets,
                               eval_markets=eval_markets)
        spec = result.deviation.agent_spec
        found[rule] = {"gain": {"mean": result.fresh.mean, "ci95": [result.fresh.lo, result.fresh.hi]},
                       "spec": spec, "behaviour": behaviour(rule, spec, markets=eval_markets, seed=seed + 1)}
        data[rule] = per_market(rule, markets=eval_markets, seed=seed + 1)
        metrics[rule] = {**{name: mean_ci(_unit(data[rule], name)) for name in METRICS},
                         "quality": ratio_ci(data[rule]["quality"][None], data[rule]["trades"][None]),
                         "score_error": ratio_ci(data[rule]["error"][None], data[rule]["listings"][None])}
    costs = {f"repaired - {base}": {name: mean_ci(_unit(data["repaired"], name) - _unit(data[base], name))
                                    for name in METRICS}
             for base in rules if base != "repaired" and "repaired" in rules}
    settings = {"sellers": SELLERS, "rounds": ROUNDS, "values": VALUES, "generations": generations,
                "markets": markets, "eval_markets": eval_markets, "seed": seed}
    return {"found": found, "metrics": metrics, "costs": costs, "settings": settings}


def markdown(table: dict[str, Any]) -> str:
    rules = list(table["found"])
    found = table["found"]
    lines = ["| rule | config | gain found (per round) | effort | price share | re-entries | fake reviews | "
             "score - type |", "|---|---|---|---|---|---|---|---|"]
    for rule in rules:
        b = found[rule]["behaviour"]
        config = " ".join(f"{k}={v:g}" for k, v in RULES[rule].items()) or "defaults"
        lines.append(f"| {rule} | {config} | {format_ci(found[rule]['gain'])} | {b['effort']:.2f} | {b['price_share']:.2f} "
                     f"| {b['reentries']:.2f} | {b['fakes']:.2f} | {b['score_gap']:+.2f} |")
    names = {"welfare": "trade surplus (welfare)", "buyer_welfare": "buyer welfare", "trades": "trades",
             "seller_profit": "seller profit (with the listing's worth)", "quality": "quality per trade",
             "score_error": "score error (mean abs. score - type)"}
    lines += ["", *ci_table("honest sellers, per listing and round", {r: r for r in rules}, names,
                            lambda rule, name: table["metrics"][rule][name])]
    if table["costs"]:
        lines += ["", *ci_table("cost of the repair (paired, honest sellers)", {p: f"`{p}`" for p in table["costs"]},
                                {name: names[name] for name in METRICS}, lambda pair, name: table["costs"][pair][name],
                                digits=4)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="print the reputation marketplace's before/after tables")
    parser.add_argument("seed", type=int, nargs="?", default=0)
    args = parser.parse_args(argv)
    print(markdown(use_case_table(seed=args.seed)))


if __name__ == "__main__":
    sys.exit(main())
