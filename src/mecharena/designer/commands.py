"""Plain functions behind ``mecharena designer ...``: print tables or JSON, return an exit code.

They raise :class:`~mecharena.core.errors.MechArenaError` on bad input and leave the message and
exit status to the CLI shell.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mecharena.designer.evaluate import audit, evaluate, run_benchmark
from mecharena.designer.policies import GreedyPolicy, RandomPolicy, make_policy, train_learned
from mecharena.designer.population import check_stage


def _interval(result: dict[str, Any]) -> str:
    low, high = result["ci95"]
    return f"{result['mean']:.3f} [{low:.3f}, {high:.3f}]"


def _emit(data: Any, as_json: bool, console: Console) -> bool:
    if as_json:
        console.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)
    return as_json


def designer_eval(policy: str, stage: int, episodes: int, seed: int, as_json: bool, console: Console,
                  factory: Callable[..., Any] = make_policy) -> int:
    """Score one policy (built by ``factory`` from its spec) on the held-out benchmark of ``stage``."""
    stage = check_stage(stage)
    chosen = factory(policy, stage, seed=seed)
    result = evaluate(chosen, stage, episodes, seed)
    if hasattr(chosen, "tally"):  # structured-output outcomes of an LLM designer
        result["structured_output"] = chosen.tally.as_dict()
    if _emit(result, as_json, console):
        return 0
    table = Table(title=escape(f"designer {result['policy']} on the stage-{stage} held-out benchmark "
                               f"(20 populations x {episodes} episodes)"))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("mean reward per step [95% CI]", _interval(result["reward"]))
    for name, value in result["components"].items():
        table.add_row(name, f"{value:.3f}")
    console.print(table)
    return 0


def designer_audit(stage: int, episodes: int, seed: int, out: Path | None, as_json: bool, console: Console) -> int:
    """Best constant, oracle and their paired gap; ``out`` receives the best constant's action JSON."""
    result = audit(check_stage(stage), episodes=episodes, seed=seed)
    if out is not None:
        out.write_text(json.dumps(result["best_constant"], indent=1))
    if _emit(result, as_json, console):
        return 0
    table = Table(title=f"audit of stage {stage}: does context matter?")
    table.add_column("designer")
    table.add_column("mean reward [95% CI]", justify="right")
    table.add_row(escape(result["constant"]["policy"]), _interval(result["constant"]["reward"]))
    table.add_row("oracle (knows the population)", _interval(result["oracle"]["reward"]))
    table.add_row("oracle - constant (paired)", _interval(result["gap"]))
    console.print(table)
    verdict = ("a bandit: one mechanism is as good as knowing the population" if result["bandit"]
               else "context matters: the oracle beats every constant mechanism")
    console.print(f"stage {stage}: {verdict}")
    return 0


def designer_train(stage: int, populations: int, seed: int, out: Path, as_json: bool, console: Console) -> int:
    """Fit the learned designer (contextual bandit) for ``stage`` and save it to ``out``."""
    bandit = train_learned(check_stage(stage), populations=populations, seed=seed)
    bandit.save(out)
    data = {"stage": stage, "populations": populations, "seed": seed, "arms": int(bandit.arms.size),
            "model": str(out)}
    if not _emit(data, as_json, console):
        console.print(f"learned designer for stage {stage}: {bandit.arms.size} arms, saved to {escape(str(out))}")
    return 0


def designer_benchmark(stages: list[int], episodes: int, seed: int, out: Path, as_json: bool, console: Console,
                       progress: Any = None) -> int:
    """The results table on the held-out benchmark for each stage (resumable: see run_benchmark)."""
    policies = {"random": RandomPolicy(seed), "greedy": GreedyPolicy()}
    results = run_benchmark([check_stage(s) for s in stages], policies, out, episodes=episodes, seed=seed,
                            progress=progress)
    (out / "table.md").write_text(markdown_table(results))
    if _emit(results, as_json, console):
        return 0
    table = Table(title=f"held-out benchmark: mean reward per step [95% CI over 20 populations], "
                        f"{episodes} episodes each")
    table.add_column("stage")
    for name in ("random", "greedy", "constant", "learned", "oracle"):
        table.add_column(name, justify="right")
    table.add_column("learned - constant", justify="right")
    table.add_column("learned / oracle", justify="right")
    for r in results:
        rows = r["rows"]
        table.add_row(str(r["stage"]), *(_interval(rows[n]["reward"]) for n in
                                         ("random", "greedy", "constant", "learned", "oracle")),
                      _interval(r["learned_minus_constant"]), f"{r['learned_share_of_oracle']:.1%}")
    console.print(table)
    console.print(f"written to {escape(str(out))} (stage-S.json, table.md)")
    return 0


def markdown_table(results: list[dict[str, Any]]) -> str:
    names = ("random", "greedy", "constant", "learned", "oracle")
    lines = ["| stage | " + " | ".join(names) + " | learned - constant (paired) | oracle - constant (paired) "
             "| learned / oracle | best constant |",
             "|---" * (len(names) + 5) + "|"]
    for r in results:
        cells = [_interval(r["rows"][n]["reward"]) for n in names]
        lines.append(f"| {r['stage']} | " + " | ".join(cells)
                     + f" | {_interval(r['learned_minus_constant'])} | {_interval(r['oracle_minus_constant'])}"
                     f" | {r['learned_share_of_oracle']:.1%} | `{r['best_constant']['name']}` |")
    return "\n".join(lines) + "\n"
