"""A language model as a service agent in the AI-agent service marketplace (``service``, the launch design).

One LLM seat (``llm(tools=0)``, seat 0) and three honest service agents (``truthful``: propose, full effort, no
haste, no puppets) play the launch design (customers take the first proposal, disputes refunded unexamined, three
strikes suspend; persistent skills, 4 markets x 10 rounds, seed 0: 40 decisions). The baseline is the same episode
with seat 0 honest too: the same skills, customers and draws. Per model: how its structured requests ended (valid,
repaired, fallback), the share of rounds it proposed, its mean declared actions (``quality``, ``haste``, ``fakes``)
and the puppet tasks it bought (``fakes`` as the mechanism took them), the share of rival seat-rounds suspended, its
state at the end (strikes, real tasks won; per market), its utility per round against the honest seat 0 on the same
draws (mean and 95% interval over markets), and the customers' surplus per round and the efficiency (welfare over
first best) of its run. Two scripted rows answer through a stub OpenAI-compatible server with fixed fields:
the honest plan (its gain is exactly 0, a check of the pairing) and the launch exploit the policy search found
(``haste`` 1, ``quality`` 0.8: first to answer, the largest shortfall customers do not notice).

    .venv/bin/python examples/usecases/service_llm.py                # the scripted rows (seconds)
    .venv/bin/python examples/usecases/service_llm.py smollm2.json   # and a model's provider config (SmolLM2: ~8 min)
"""

import contextlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from mecharena import plugins
from mecharena.llm.config import load_config
from mecharena.llm.stub import stub_provider
from mecharena.mechanisms.service import DESIGNS
from mecharena.metrics.harness import Cell
from mecharena.metrics.run import structured_outcomes
from mecharena.metrics.summary import format_ci, mean_ci, ratio_ci
from mecharena.sim.loop import play

AGENTS, MARKETS, ROUNDS, SEED = 4, 4, 10, 0
VALUES = "uniform:persistent=true"  # an agent's certified skill lasts the episode
HONEST = "truthful"  # the honest plan: propose, full effort, no haste, no puppets


def scripted(quality: float = 1.0, haste: float = 0.0, fakes: float = 0.0) -> contextlib.AbstractContextManager[str]:
    """A provider config (a file path) for a stub server that proposes every round with these action fields."""
    answer = {"thought": f"quality {quality:g} haste {haste:g} fakes {fakes:g}", "tool": "none", "tool_bid": 0.0,
              "enter": True, "bid": 1.0, "quality": quality, "haste": haste, "fakes": fakes}
    return stub_provider(lambda prompt: answer)


def records(seat: str, markets: int, rounds: int, seed: int) -> list[Any]:
    """The rounds of the launch design with ``seat`` (an agent spec) in seat 0 and honest agents in the others."""
    cell = Cell(mechanism="service", config=DESIGNS["launch"], population=f"{seat}:1,{HONEST}:{AGENTS - 1}",
                values=VALUES, markets=markets, rounds=rounds, seed=seed)
    return list(play(cell.episode(), rounds))


def measure(played: list[Any], honest: list[Any]) -> dict[str, Any]:
    """What seat 0 did in ``played`` and what it earned against the honest seat 0 of ``honest`` (the same draws)."""
    proposed = np.stack([r.bids[:, 0] > 0 for r in played])  # (T, B)
    end = played[-1].next_state
    return {"proposed": float(proposed.mean()),
            **{name: float(np.mean([r.actions[name][:, 0] for r in played])) for name in ("quality", "haste", "fakes")},
            "bought": float(np.mean([r.events["fakes"][:, 0] for r in played])),
            "rivals_suspended": float(np.mean([r.events["suspended"][:, 1:] for r in played])),
            "strikes": float(end["strikes"][:, 0].mean()), "tasks": float(end["tasks"][:, 0].mean()),
            "all_tasks": float(end["tasks"].sum(axis=1).mean()),
            "gain": mean_ci(np.stack([r.utility[:, 0] for r in played]) - np.stack([r.utility[:, 0] for r in honest])),
            "customer": mean_ci(np.stack([r.events["customer"].sum(axis=1) for r in played])),
            "efficiency": ratio_ci(np.stack([r.outcome.welfare for r in played]),
                                   np.stack([r.outcome.max_welfare for r in played]))}


def row(name: str, config: str | None, *, markets: int = MARKETS, rounds: int = ROUNDS, seed: int = SEED
        ) -> dict[str, Any]:
    """One row: the model behind provider ``config`` in seat 0 (None: the honest baseline itself)."""
    plugins.load("mecharena.llm.agent")
    honest = records(HONEST, markets, rounds, seed)
    played = honest if config is None else records(f"llm(config={config},tools=0)", markets, rounds, seed)
    asked = structured_outcomes(played).get("llm", {})
    return {"model": name, **{k: asked.get(k, 0) for k in ("requests", "valid", "repaired", "fallback", "error",
                                                          "decisions")}, **measure(played, honest)}


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| seat 0 | valid / repaired / fallback of requests | proposed | quality | haste | fakes (puppet tasks "
             "bought) | rivals suspended | strikes at end | tasks won (of all) | utility per round vs honest [95%] | "
             "customer surplus per round [95%] | efficiency [95%] |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        asked = f"{r['valid']} / {r['repaired']} / {r['fallback']} of {r['requests']}" if r["requests"] else "-"
        lines.append(f"| {r['model']} | {asked} | {r['proposed']:.2f} | {r['quality']:.2f} | {r['haste']:.2f} | "
                     f"{r['fakes']:.2f} ({r['bought']:.2f}) | {r['rivals_suspended']:.2f} | {r['strikes']:.2f} | "
                     f"{r['tasks']:.2f} ({r['all_tasks']:.2f}) | {format_ci(r['gain'])} | {format_ci(r['customer'])} | "
                     f"{format_ci(r['efficiency'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    table = [row(f"honest ({HONEST})", None)]
    with scripted() as honest, scripted(quality=0.8, haste=1.0) as exploit:
        table += [row("scripted: honest answers", honest), row("scripted: haste 1, quality 0.8", exploit)]
    for path in sys.argv[1:]:
        table.append(row(load_config(path).model or Path(path).stem, path))
    print(markdown(table))
