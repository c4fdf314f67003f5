"""The rationality table of docs/llm.md: per model, how its answers ended and how many of its actions were dominated.

Two LLM seats and one truthful seat play first and second price (reserve 0.1, values U[0, 1], 1 market x 10 rounds,
seed 0). For each model: structured requests (parsed at once, repaired, fallback); decisions valid as actions, the
ones not judged dominated (``mecharena.llm.agent.dominated``: here, a bid above value); the two LLM seats' surplus
per decision against the same seats bidding truthfully, and bidding the Bayes-Nash equilibrium (``bne``), on the same
draws (mean and 95% interval); and each LLM bid's regret against the discovery engine's best response to the rivals
as they played (``mecharena.fuzz.discover.decision_regret``: what the best bid at that value would have earned over
the 10 recorded rounds, less what the bid earned). A scripted baseline answers through a stub OpenAI-compatible
server with a fixed rule (bid ``share`` x value), so the table always has a reference row.

    .venv/bin/python examples/llm/rationality.py                # the scripted baseline (seconds)
    .venv/bin/python examples/llm/rationality.py smollm2.json   # and a model's provider config (SmolLM2: ~6 min)
"""

import contextlib
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mecharena import agents, mechanisms, plugins
from mecharena.fuzz.discover import decision_regret
from mecharena.llm.stub import stub_provider
from mecharena.metrics.run import structured_outcomes
from mecharena.metrics.summary import mean_ci
from mecharena.sim.loop import make_episode, play

MECHANISMS = ("first_price", "second_price")
ROUNDS = 10


def scripted(share: float) -> contextlib.AbstractContextManager[str]:
    """A provider config (a file path) for a stub server that bids ``share`` x the value its prompt states."""

    def rule(prompt: str) -> dict[str, Any]:
        value = float(re.search(r"Your value for the item this round: ([0-9]+\.[0-9]+)", prompt).group(1))
        return {"thought": f"bid {share:g} x value", "tool": "none", "tool_bid": 0.0, "enter": True,
                "bid": round(share * value, 3)}

    return stub_provider(rule)


def rows(name: str, config: str, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    """One row per mechanism for the model behind provider ``config``."""
    plugins.load("mecharena.llm.agent")
    out = []
    for mechanism in MECHANISMS:
        def records(spec: str) -> tuple[Any, list]:
            episode = make_episode(mechanisms.get(mechanism), {"reserve_price": 0.1}, agents.population(spec, 0),
                                   markets=1, seed=0)
            return episode, list(play(episode, rounds))

        episode, played = records(f"llm(config={config},tools=0):2,truthful:1")
        seats = np.array([r.utility[0, :2] for r in played])
        gain = seats - np.array([r.utility[0, :2] for r in records("truthful:3")[1]])
        versus_equilibrium = seats - np.array([r.utility[0, :2] for r in records("bne:3")[1]])
        regret = np.stack([decision_regret(episode, played, seat) for seat in (0, 1)], axis=1)
        out.append({"model": name, "mechanism": mechanism, **structured_outcomes(played)["llm"],
                    "surplus_vs_truthful": mean_ci(gain.reshape(1, -1)),
                    "surplus_vs_equilibrium": mean_ci(versus_equilibrium.reshape(1, -1)),
                    "regret": mean_ci(regret.reshape(1, -1))})
    return out


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| model | mechanism | requests | parsed at once | repaired | fallback | valid as actions | surplus vs "
             "truthful per "
             "decision [95%] | surplus vs equilibrium per decision [95%] | regret vs best response per decision "
             "[95%] |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        s, e, g = r["surplus_vs_truthful"], r["surplus_vs_equilibrium"], r["regret"]
        lines.append(f"| {r['model']} | {r['mechanism']} | {r['requests']} | {r['valid']} | {r['repaired']} | "
                     f"{r['fallback']} | {r['decisions'] - r['dominated']} of {r['decisions']} | {s['mean']:+.3f} "
                     f"[{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}] | {e['mean']:+.3f} [{e['ci95'][0]:+.3f}, "
                     f"{e['ci95'][1]:+.3f}] | {g['mean']:.3f} [{g['ci95'][0]:.3f}, {g['ci95'][1]:.3f}] |")
    return "\n".join(lines)


if __name__ == "__main__":
    with scripted(2 / 3) as baseline:
        table = rows("scripted: bids 2/3 of value", baseline)
    for path in sys.argv[1:]:
        table += rows(Path(path).stem, path)
    print(markdown(table))
