"""``mecharena designer ...``: the commands, and the plain functions behind them (print tables or JSON, return
an exit code; they raise :class:`~mecharena.core.errors.MechArenaError` on bad input and leave the message and
exit status to the shell).
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mecharena.cli.shell import JsonFlag, exit_with, fail, make_console, progress_bar, seed_option
from mecharena.core.errors import ConfigError, MechArenaError
from mecharena.designer import core
from mecharena.designer.evaluate import audit, evaluate, run_benchmark, stratified
from mecharena.designer.policies import GreedyPolicy, RandomPolicy, make_policy, train_learned
from mecharena.designer.population import HELD_OUT_SIZE, check_stage


def _interval(result: dict[str, Any]) -> str:
    low, high = result["ci95"]
    return f"{result['mean']:.3f} [{low:.3f}, {high:.3f}]"


def _emit(data: Any, as_json: bool, console: Console) -> bool:
    if as_json:
        console.print(json.dumps(data, indent=2), markup=False, highlight=False, soft_wrap=True)
    return as_json


def designer_eval(policy: str, stage: int, episodes: int, seed: int, populations: int | None, as_json: bool,
                  console: Console, factory: Callable[..., Any] = make_policy,
                  progress: Callable[[int], Callable[[], None]] | None = None) -> int:
    """Score one policy (built by ``factory`` from its spec) on the held-out benchmark of ``stage``, or on
    a stratified subset of ``populations`` of it. A policy that asks a model one decision at a time (an
    LLM designer: it has ``on_decision``) reports each to ``progress(total)``'s callback."""
    stage = check_stage(stage)
    subset = stratified(stage, populations) if populations is not None else None
    chosen = factory(policy, stage, seed=seed)
    if progress is not None and hasattr(chosen, "on_decision"):
        count = HELD_OUT_SIZE if subset is None else len(subset)
        chosen.on_decision = progress(count * episodes * core.HORIZON)
    result = evaluate(chosen, stage, episodes, seed, subset)
    if hasattr(chosen, "tally"):  # structured-output outcomes of an LLM designer
        result["structured_output"] = chosen.tally.as_dict()
    if _emit(result, as_json, console):
        return 0
    table = Table(title=escape(f"designer {result['policy']} on the stage-{stage} held-out benchmark "
                               f"({len(result['populations'])} of {HELD_OUT_SIZE} populations x {episodes} episodes)"))
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("mean reward per step [95% CI]", _interval(result["reward"]))
    for name, value in result["components"].items():
        table.add_row(name, f"{value:.3f}")
    console.print(table)
    return 0


def designer_audit(stage: int, episodes: int, seed: int, candidates: int, out: Path | None, as_json: bool,
                   console: Console) -> int:
    """Best constant, oracle and their paired gap; ``out`` receives the best constant's action JSON."""
    result = audit(check_stage(stage), episodes=episodes, seed=seed, candidates=candidates)
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
    best = result["best_constant"]
    console.print(f"best constant of {best['evaluated']:,} mechanisms searched on the {best['grid']:,}-mechanism grid "
                  f"({best['populations']} training populations): {escape(best['name'])}")
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


# --- the `mecharena designer` commands ---------------------------------------------------------------

app = typer.Typer(no_args_is_help=True, help="The referee environment: evaluate, audit and train designers.")
out = make_console()
err = make_console(stderr=True)
StageOption = Annotated[int, typer.Option("--stage", help="curriculum stage 1-5")]
EpisodesOption = Annotated[int, typer.Option("--episodes", help="episodes per held-out population")]
MarketSeedOption = Annotated[int, seed_option("seed of the markets (and of random policies)")]


def mecharena_policies():
    """Every designer policy spec, ``llm:CONFIG`` included (the llm layer knows the designer's)."""
    from mecharena.llm.designer import make_designer_policy

    return make_designer_policy


@app.command("eval")
def eval_command(
    policy: Annotated[str, typer.Option(
        "--policy", help="random | greedy | constant:FILE | oracle | learned[:FILE] | llm:CONFIG")],
    stage: StageOption = 1,
    episodes: EpisodesOption = 4,
    seed: MarketSeedOption = 0,
    populations: Annotated[int | None, typer.Option(
        "--populations", help="a stratified subset of K of the 20 held-out populations (a slow LLM designer)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a designer policy on the stage's held-out benchmark (20 populations never used in training)."""
    factory = mecharena_policies()
    with progress_bar(err, "decisions") as bar:
        def progress(total: int) -> Callable[[], None]:
            task = bar.add_task("decisions", total=total)
            return lambda: bar.advance(task)

        exit_with(designer_eval, policy, stage, episodes, seed, populations, as_json, console=out, factory=factory,
                  progress=progress)


@app.command("play")
def play_command(
    policy: Annotated[str, typer.Option(
        "--policy", help="random | greedy | constant:FILE | oracle | learned[:FILE] | llm:CONFIG")],
    directory: Annotated[Path, typer.Option("--out", help="new directory: steps.jsonl and traces.jsonl")],
    stage: StageOption = 1,
    seed: MarketSeedOption = 0,
    steps: Annotated[int | None, typer.Option(
        "--steps", help="stop after this many steps (default: the whole episode)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Play one training episode with a policy and record it (an LLM designer's prompts and answers too)."""
    from mecharena.designer.evaluate import play_episode

    try:
        chosen = mecharena_policies()(policy, check_stage(stage), seed=seed)
        with progress_bar(err, "designer episode", hidden=as_json) as progress:
            task = progress.add_task("steps", total=steps or core.HORIZON)
            result = play_episode(chosen, stage, seed, directory, steps=steps,
                                  on_step=lambda _: progress.advance(task))
    except MechArenaError as exc:
        raise fail(exc) from None
    if hasattr(chosen, "tally"):
        result["structured_output"] = chosen.tally.as_dict()
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=escape(f"designer {chosen.name}, stage {stage}, seed {seed}: {result['steps']} steps"))
    table.add_column("measure")
    table.add_column("mean per step", justify="right")
    for name, value in {"reward": result["reward"], **result["components"]}.items():
        table.add_row(name, f"{value:.3f}")
    out.print(table)
    out.print(f"recorded in {escape(str(result['out']))}")


@app.command("audit")
def audit_command(
    stage: StageOption = 1,
    episodes: EpisodesOption = 4,
    seed: MarketSeedOption = 0,
    candidates: Annotated[int, typer.Option(
        "--candidates", help="random grid mechanisms to start the search from (besides the 420-mechanism menu)")] = 4096,
    out_path: Annotated[Path | None, typer.Option("--out", help="write the best constant mechanism here (JSON)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Best constant mechanism (searched over the whole action grid on training populations), the oracle, and
    their paired gap."""
    exit_with(designer_audit, stage, episodes, seed, candidates, out_path, as_json, console=out)


@app.command("train")
def train_command(
    stage: StageOption = 1,
    out_path: Annotated[Path, typer.Option("--out", help="model file (.npz)")] = Path("designer-learned.npz"),
    populations: Annotated[int, typer.Option("--populations", help="training populations per round")] = 1024,
    seed: MarketSeedOption = 0,
    as_json: JsonFlag = False,
) -> None:
    """Fit the learned designer (a contextual bandit over observation features) for one stage."""
    if populations < 8:
        raise fail(ConfigError(f"populations must be >= 8, got {populations}"))
    exit_with(designer_train, stage, populations, seed, out_path, as_json, console=out)


@app.command("benchmark")
def benchmark_command(
    stages: Annotated[str, typer.Option("--stages", help="comma-separated stages")] = "1,2,3,4,5",
    episodes: EpisodesOption = 4,
    seed: MarketSeedOption = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="results directory (resumes finished stages)")] = Path(
        "runs/designer"),
    as_json: JsonFlag = False,
) -> None:
    """The results table: random, greedy, best constant, learned and oracle on each stage's held-out benchmark."""
    try:
        chosen = [int(s) for s in stages.split(",") if s.strip()]
    except ValueError:
        raise fail(ConfigError(f"--stages must be comma-separated integers, got {stages!r}")) from None
    with progress_bar(err, "stages", hidden=as_json) as bar:
        task = bar.add_task("stages", total=len(chosen))
        exit_with(designer_benchmark, chosen, episodes, seed, out_dir, as_json, console=out,
                   progress=lambda _: bar.advance(task))


ArenaSettingsOption = Annotated[str | None, typer.Option(
    "--settings", help="the referee's settings (designer.arena.Settings): a YAML or JSON file, or inline JSON; "
                       "default: the built-in ones")]


def arena_params(text: str | None) -> Any:
    """The arena referee's params from ``--settings`` (a file, inline JSON or YAML, or nothing)."""
    import yaml

    from mecharena.designer import arena

    if text is None:
        return arena.make_params()
    path = Path(text)
    try:
        data = yaml.safe_load(path.read_text() if path.is_file() else text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--settings must be YAML or JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--settings must be a mapping of Settings fields (a file or inline JSON), got {text!r}")
    return arena.make_params(data)


def arena_play(settings: str | None, rules: str, seed: int, as_json: bool, console: Console) -> int:
    """Play one episode of the arena referee under constant ``rules`` (JSON) and print its steps."""
    from mecharena.designer import arena

    params = arena_params(settings)
    try:
        given = json.loads(rules)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--rules must be a JSON object of Rules fields: {exc.msg} at column {exc.colno}") from None
    chosen = arena.parse_rules(params, given)
    with progress_bar(err, "arena referee episode", hidden=as_json) as bar:
        task = bar.add_task("steps", total=params.settings.horizon)
        state, results = arena.play_constant(params, chosen, seed, on_step=lambda: bar.advance(task))
    steps = [{"reward": result.reward, **result.components} for result in results]
    mean = {name: float(np.mean([s[name] for s in steps])) for name in steps[0]}
    data = {"population": state.population, "key": seed, "rules": chosen.model_dump(), "mean": mean, "steps": steps}
    if _emit(data, as_json, console):
        return 0
    console.print(f"{escape(chosen.mechanism)} {escape(json.dumps(chosen.config))} against "
                  f"{escape(state.population)}: mean reward {mean['reward']:.3f} over {len(steps)} steps")
    table = Table(title="per step")
    for column in ("step", *steps[0]):
        table.add_column(column, justify="right")
    for t, s in enumerate(steps):
        table.add_row(str(t), *(f"{v:.3f}" for v in s.values()))
    console.print(table)
    return 0


def arena_audit(settings: str | None, episodes: int, seed: int, candidates: int, as_json: bool,
                console: Console) -> int:
    """Search the arena referee's best constant rules and score them on held-out episodes."""
    from mecharena.designer import arena

    params = arena_params(settings)
    with progress_bar(err, "episodes played", hidden=as_json) as bar:
        task = bar.add_task("episodes", total=None)
        found = arena.search_constant(params, episodes=episodes, seed=seed, candidates=candidates,
                                      on_episode=lambda: bar.advance(task))
    if _emit(found, as_json, console):
        return 0
    rules, base = found["rules"], found["baseline"]
    console.print(f"Best constant rules: {escape(rules['mechanism'])} {escape(json.dumps(rules['config']))}, "
                  f"held-out reward {_interval(found['held_out'])}, "
                  f"{_interval(found['baseline']['paired_gain'])} over {escape(base['rules']['mechanism'])} "
                  f"with its defaults ({found['evaluated']} of {found['grid']} rules played, "
                  f"{found['episodes']} training episodes)")
    table = Table(title="best rules found (in sample)")
    for column in ("mechanism", "config", "information shown", "enforcement", "mean reward"):
        table.add_column(column)
    for entry in found["top"]:
        r = entry["rules"]
        shown = ", ".join(k for k, v in r["information"].items() if v) or "nothing"
        fines = ", ".join(f"{k}={v:g}" for k, v in r["enforcement"].items() if v) or "none"
        table.add_row(escape(r["mechanism"]), escape(json.dumps(r["config"])), shown, fines, f"{entry['mean']:.3f}")
    console.print(table)
    return 0


@app.command("arena-play")
def arena_play_command(
    rules: Annotated[str, typer.Option("--rules", help='constant rules as JSON, e.g. \'{"mechanism": "first_price", '
                                                       '"config": {"reserve_price": 0.1}}\'')] = "{}",
    settings: ArenaSettingsOption = None,
    seed: Annotated[int, seed_option("the episode key")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Play one episode of the referee on the arena's loop (any registered mechanism, arena agent types)."""
    exit_with(arena_play, settings, rules, seed, as_json, console=out)


@app.command("arena-audit")
def arena_audit_command(
    settings: ArenaSettingsOption = None,
    episodes: Annotated[int, typer.Option("--episodes", help="training episodes (and as many held-out), >= 16")] = 16,
    seed: MarketSeedOption = 0,
    candidates: Annotated[int, typer.Option(
        "--candidates", help="random grid rules to start the search from (besides every mechanism's defaults)")] = 128,
    as_json: JsonFlag = False,
) -> None:
    """The best constant rules of the referee on the arena's loop, searched over the whole discrete grid."""
    exit_with(arena_audit, settings, episodes, seed, candidates, as_json, console=out)
