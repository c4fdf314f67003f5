"""Benchmark of the discovery engine: how fast a one-shot best response is found, and how much of a
planted flaw's true exploitability it finds.

* ``one_shot``: the type-wise best response of one bidder against ``n`` - 1 truthful bidders in a
  first-price auction (``samples`` market-rounds, the default search grid), CPU and wall seconds
  (medians of repetitions). Target: under 30 s for n = 10 on 2 cores.
* ``planted``: for every case of the casebook (``examples/plugins/planted/*.py``, each with its exact
  ``true_exploitability(n)``), the engine's best response against ``truthful:n`` scored on a fresh
  seed (``eval_markets`` markets) with its 95% interval, and the ratio found / true. Target: >= 0.9.
  The search has the deviator's actions of the case's definition: false names as ``fuzz`` searches
  them, up to the case's ``MAX_IDENTITIES`` (1 where it names none).
* ``planted_rounds``: the same for the flaws that exist only across rounds (``planted/rounds/*.py``, each
  with ``true_exploitability(n, rounds)``), found by the repeated-game policy search over ``ROUNDS``
  rounds, with what the found policy does in words. Target: >= 0.9.
* ``planted_actions``: the same as ``planted`` for flaws exploited beyond one buyer's bid
  (``planted/two_sided/*.py``: a seller's ask; ``planted/multi_unit/*.py``: a bid vector), each at the
  market size its ``MARKET_SIZE`` names; the engine searches every role it searches in ``fuzz`` (a buyer
  and a seller in two-sided markets) and the best is scored.
"""

import glob
import importlib.util
import math
from pathlib import Path
from typing import Any

from mecharena import plugins
from mecharena.benchmarks.timing import machine_load, report, timed
from mecharena.fuzz.discover import best_response
from mecharena.fuzz.policy_search import policy_search
from mecharena.fuzz.score import Scorer
from mecharena.fuzz.search import engine_searches
from mecharena.metrics.harness import Cell

TARGET_SECONDS = 30.0
TARGET_RATIO = 0.9
ROUNDS = 6  # rounds of the planted cases across rounds


def casebook(folder: str = "") -> list[Path]:
    """The planted cases shipped beside the package's examples (empty when the examples are absent); ``folder``:
    "rounds" for the flaws across rounds, "two_sided" or "multi_unit" for actions beyond one bid."""
    root = Path(__file__).resolve().parents[3] / "examples" / "plugins" / "planted" / folder
    return sorted(Path(p) for p in glob.glob(str(root / "*.py")))


def _case(path: Path) -> Any:
    """The case's module (its oracle: ``true_exploitability``, and ``MAX_IDENTITIES`` if it allows false names)."""
    spec = importlib.util.spec_from_file_location(f"_planted_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def planted_case(path: Path, n: int, *, samples: int, eval_markets: int, seed: int = 0) -> dict[str, Any]:
    """The engine against one planted case: found gain (fresh seed, 95% CI), true exploitability, ratio."""
    plugin = plugins.load(str(path))
    name = plugin.mechanisms[0].name
    target = Cell(mechanism=name, population=f"truthful:{n}", rounds=1)
    scorer, case = Scorer(target), _case(path)
    best = None
    for role, identities in engine_searches(scorer):  # a buyer and a seller where the market is two-sided
        identities = min(identities, getattr(case, "MAX_IDENTITIES", 1))
        found = best_response(target, seed=seed, samples=samples, role=role, identities=identities)
        gain = scorer.score(found.deviation, seed=seed + 1, markets=eval_markets, rounds=1)
        if best is None or gain.mean > best[1].mean:
            best = (found, gain, role)
    found, gain, role = best
    true = float(case.true_exploitability(n))
    return {"case": name, "n": n, "role": role, "true": true, "found": gain.mean, "ci95": [gain.lo, gain.hi],
            "ratio": gain.mean / true if true > 0 else math.nan, "description": found.description}


def planted_rounds_case(path: Path, n: int, *, eval_markets: int, rounds: int = ROUNDS,
                        seed: int = 0) -> dict[str, Any]:
    """The policy search against one planted case across rounds: found gain (fresh seed, 95% CI), true
    exploitability, ratio and what the found policy does."""
    name = plugins.load(str(path)).mechanisms[0].name
    target = Cell(mechanism=name, population=f"truthful:{n}", rounds=rounds)
    found = policy_search(target, seed=seed, eval_markets=eval_markets)
    true = float(_case(path).true_exploitability(n, rounds))
    gain = found.fresh
    return {"case": name, "n": n, "rounds": rounds, "true": true, "found": gain.mean, "ci95": [gain.lo, gain.hi],
            "ratio": gain.mean / true if true > 0 else math.nan, "description": found.description}


def run(n: int = 10, samples: int = 20_000, cases_n: int = 4, eval_markets: int = 40_000,
        repeats: int = 1) -> dict[str, Any]:
    """The benchmark's JSON (see the module docstring)."""
    load = machine_load()
    target = Cell(mechanism="first_price", population=f"truthful:{n}", rounds=1)
    times = timed(lambda: best_response(target, seed=0, samples=samples), repeats)
    cases = [planted_case(path, cases_n, samples=samples, eval_markets=eval_markets) for path in casebook()]
    across = [planted_rounds_case(path, cases_n, eval_markets=eval_markets // 4) for path in casebook("rounds")]
    actions = [planted_case(path, getattr(_case(path), "MARKET_SIZE", cases_n), samples=samples,
                            eval_markets=eval_markets) for path in casebook("two_sided") + casebook("multi_unit")]
    body = {
        "one_shot": {"mechanism": "first_price", "n": n, "samples": samples, "wall_seconds": times["wall_s"],
                     "cpu_seconds": times["cpu_s"], "wall_trials": times["wall_trials"],
                     "cpu_trials": times["cpu_trials"], "target_seconds": TARGET_SECONDS,
                     "meets": times["cpu_s"] < TARGET_SECONDS},
        "planted": cases,
        "planted_rounds": across,
        "planted_actions": actions,
        "planted_meets": {c["case"]: c["ratio"] >= TARGET_RATIO for c in cases + across + actions},
        "target_ratio": TARGET_RATIO,
    }
    return report("discovery", body, load, repeats)
