"""``negotiate ...`` commands, as a typer sub-app (:data:`app`) that the main CLI mounts.

A shell: parsing, printing (rich tables, or one JSON object with ``--json``) and exit codes
(2 on bad input, with the message and no traceback). No economics here.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from mecharena.core.config import check_seed
from mecharena.core.errors import MechArenaError
from mecharena.cli.shell import fail, make_console, progress_bar, seed_option

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  help="The scarce-GPU bargaining economy: baselines, episodes, training data.")
out = make_console()
err = make_console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")]
TaskOption = Annotated[str, typer.Option("--task", help="single_trade | market_round | coalition_market | all")]
SeedOption = Annotated[int, seed_option("first episode seed")]


def _fail(exc: Exception) -> typer.Exit:
    return fail(exc, err)


def _emit(data: Any) -> None:
    out.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)


def _interval(result: dict[str, Any]) -> str:
    low, high = result["ci95"]
    return f"{result['mean']:.2f} [{low:.2f}, {high:.2f}]"


def _progress(total: int, label: str, hidden: bool) -> Progress:
    bar = progress_bar(err, label, hidden=hidden)
    bar.add_task(label, total=total)
    return bar


def markdown_table(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The baseline table as Markdown: a row per task, a column per policy (mean [95% CI])."""
    policies = list(next(iter(table.values())))
    lines = ["| task | " + " | ".join(policies) + " |", "|---" * (len(policies) + 1) + "|"]
    for task, rows in table.items():
        lines.append(f"| {task} | " + " | ".join(_interval(rows[p]["reward"]) for p in policies) + " |")
    return "\n".join(lines) + "\n"


#: Builds the learner's policy from its name (None: the policies of this package). The main CLI
#: installs the llm layer's factory, which adds ``llm:CONFIG``.
policy_factory: Callable[[str], Any] | None = None


@app.command("baselines")
def baselines(
    task: TaskOption = "all",
    seeds: Annotated[int, typer.Option("--seeds", help="episodes per policy (seeds 0..N-1 after --seed)")] = 30,
    seed: SeedOption = 0,
    policies: Annotated[str, typer.Option("--policies", help="comma-separated policy names")] =
    "random,always_accept,greedy_hoarder,expert",
    markdown: Annotated[bool, typer.Option("--markdown", help="print the Markdown table")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Mean episode reward [95% CI] of each policy in the learner's seat, on the same episodes."""
    from mecharena.negotiation.evaluate import baseline_table, check_seeds
    from mecharena.negotiation.policies import make_policy
    from mecharena.negotiation.scenario import TASKS, check_task

    try:
        tasks = list(TASKS) if task == "all" else [check_task(task)]
        names = [p.strip() for p in policies.split(",") if p.strip()]
        for name in names:
            make_policy(name)
        check_seed(seed + check_seeds(seeds) - 1, "--seed + --seeds - 1 (the last episode's seed)")
        with _progress(len(tasks) * len(names) * seeds, "episodes", as_json) as bar:
            table = baseline_table(tasks, names, seeds, seed, on_episode=lambda: bar.advance(bar.task_ids[0]))
    except MechArenaError as exc:
        raise _fail(exc) from None
    if as_json:
        _emit({t: {p: {k: v for k, v in r.items() if k != "rewards"} for p, r in rows.items()}
               for t, rows in table.items()})
        return
    if markdown:
        out.print(markdown_table(table), markup=False, highlight=False, soft_wrap=True)
        return
    view = Table(title=f"mean episode reward [95% CI], seeds {seed}..{seed + seeds - 1}")
    view.add_column("task")
    for name in names:
        view.add_column(name, justify="right")
    for t, rows in table.items():
        best = max(names, key=lambda n: rows[n]["reward"]["mean"])
        view.add_row(t, *((f"[bold]{_interval(rows[n]['reward'])}[/]" if n == best else _interval(rows[n]["reward"]))
                          for n in names))
    out.print(view)


@app.command("play")
def play(
    task: TaskOption = "single_trade",
    policy: Annotated[str, typer.Option("--policy", help="policy in the learner's seat (baseline, archetype, llm:CONFIG, "
                                                         "or degenerate probe)")] = "expert",
    seed: SeedOption = 0,
    transcript: Annotated[Path | None, typer.Option("--transcript", help="write the episode as JSON lines")] = None,
    judge: Annotated[bool, typer.Option("--judge", help="score pitches (never part of the reward)")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Play one episode and show what happened."""
    from mecharena.negotiation.env import play_episode
    from mecharena.negotiation.scenario import check_task

    try:
        chosen = policy if policy_factory is None else policy_factory(policy)
        episode = play_episode(check_task(task), chosen, seed, judge=judge)
    except MechArenaError as exc:
        raise _fail(exc) from None
    notes = getattr(chosen, "notes", None)  # a model's prompts and answers
    if transcript is not None:
        transcript.parent.mkdir(parents=True, exist_ok=True)
        transcript.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in episode.transcript))
        if notes:
            transcript.with_suffix(".traces.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    summary = {"task": task, "policy": episode.policy, "seed": seed, "reward": episode.reward,
               "values": episode.values, "steps": episode.steps, "invalid": episode.invalid,
               "seats": episode.transcript[0]["seats"], "judge": episode.judge,
               "transcript": None if transcript is None else str(transcript)}
    if hasattr(chosen, "tally"):
        summary["structured_output"] = chosen.tally.as_dict()
    if as_json:
        _emit(summary)
        return
    view = Table(title=escape(f"{task}, seed {seed}: {episode.policy} in lab 0"))
    for column in ("t", "event", "details"):
        view.add_column(column)
    for e in episode.transcript[1:]:
        if e["type"] in ("run",):
            continue
        details = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "type"))
        view.add_row(str(e["t"]), e["type"], escape(details[:110]))
    out.print(view)
    seats = episode.transcript[0]["seats"]
    for lab, value in enumerate(episode.values):
        out.print(f"lab {lab} ({seats[lab]}): settled value {value:.2f}")
    if episode.judge is not None:
        out.print(f"mean pitch score (judge): {episode.judge:.3f}")


@app.command("sft-data")
def sft_data(
    out_path: Annotated[Path, typer.Option("--out", help="JSONL file of chat records")],
    episodes: Annotated[int, typer.Option("--episodes", help="episodes per task and teacher")] = 20,
    task: TaskOption = "all",
    teachers: Annotated[list[str] | None, typer.Option(
        "--teacher", help="who plays the learner's seat: expert or a scripted policy (repeat for several)")] = None,
    seed: SeedOption = 0,
    as_json: JsonFlag = False,
) -> None:
    """Chat-format SFT records of teachers' decisions (the LLM negotiator's prompt in, its choice JSON out), each
    with the return it led to."""
    from mecharena.llm.sft import negotiation_records, write_jsonl
    from mecharena.negotiation.scenario import TASKS, check_task

    teachers = teachers or ["expert"]
    try:
        tasks = list(TASKS) if task == "all" else [check_task(task)]
        records = []
        with _progress(len(tasks) * len(teachers), "tasks x teachers", as_json) as bar:
            for t in tasks:
                for teacher in teachers:
                    records.extend(negotiation_records(t, episodes, seed, teacher))
                    bar.advance(bar.task_ids[0])
        path = write_jsonl(records, out_path)
    except MechArenaError as exc:
        raise _fail(exc) from None
    summary = {"records": len(records), "tasks": tasks, "teachers": teachers, "episodes": episodes, "seed": seed,
               "out": str(path)}
    if as_json:
        _emit(summary)
    else:
        out.print(escape(f"{len(records)} decisions of {', '.join(teachers)} from {episodes} episodes of "
                         f"{', '.join(tasks)} written to {path}"))
