"""``mecharena bench ...``: every benchmark prints its JSON (``--json``) or a table of it; sizes are checked first."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mecharena.cli.shell import JsonFlag, fail, make_console, seed_option, stdout_to_stderr
from mecharena.core.config import shown_value
from mecharena.core.errors import ConfigError, MechArenaError

app = typer.Typer(no_args_is_help=True, help="Benchmarks (print JSON with --json).")
out = make_console()
RepeatsOption = Annotated[int, typer.Option("--repeats", help="interleaved repetitions per path (medians reported)")]


def at_least_one(**counts: int) -> dict[str, int]:
    """A benchmark's sizes, checked: each at least 1 (one error line naming them otherwise)."""
    if any(not isinstance(v, int) or v < 1 for v in counts.values()):
        names = " and ".join(counts)
        got = ", ".join(f"{k}={shown_value(v)}" for k, v in counts.items()) if len(counts) > 1 else \
            shown_value(next(iter(counts.values())))
        raise fail(ConfigError(f"{names} must be >= 1, got {got}"))
    return counts


def checked_repeats(repeats: int) -> int:
    """A benchmark's ``--repeats``, checked: at least 1."""
    return at_least_one(repeats=repeats)["repeats"]


@app.command("fuzz")
def bench_fuzz(
    repeats: RepeatsOption = 3,
    as_json: JsonFlag = False,
) -> None:
    """Fuzzing: evaluations per second, found gain vs budget, a default run's time (target by CPU seconds)."""
    from mecharena.benchmarks.fuzz import run

    print_bench(run(repeats=checked_repeats(repeats)), as_json)


def print_bench(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    from mecharena.benchmarks.timing import rows

    table = Table(title=escape(f"benchmark: {result.get('benchmark', '')} (every trial: --json)"))
    table.add_column("measure", overflow="fold")
    table.add_column("value", justify="right", overflow="fold")
    for key, value in rows(result):
        table.add_row(escape(key), escape(value))
    out.print(table)


def sizes(markets: int, rounds: int) -> dict[str, int]:
    """Benchmark sizes, checked: both at least 1."""
    return at_least_one(markets=markets, rounds=rounds)


@app.command("discovery")
def bench_discovery(
    n: Annotated[int, typer.Option(help="bidders of the one-shot best-response timing")] = 10,
    samples: Annotated[int, typer.Option(help="market-rounds each best response is fitted on")] = 20_000,
    eval_markets: Annotated[int, typer.Option(help="fresh markets scoring each planted case")] = 40_000,
    repeats: RepeatsOption = 1,
    as_json: JsonFlag = False,
) -> None:
    """Discovery engine: one-shot best response time, found / true exploitability per planted flaw."""
    from mecharena.benchmarks.discovery import run

    if n < 2 or samples < 2 or eval_markets < 2:
        raise fail(ConfigError(f"n, samples and eval_markets must be >= 2, got n={n}, samples={samples}, "
                               f"eval_markets={eval_markets}"))
    try:
        result = run(n=n, samples=samples, eval_markets=eval_markets, repeats=checked_repeats(repeats))
    except MechArenaError as exc:
        raise fail(exc) from None
    print_bench(result, as_json)


@app.command("loop")
def bench_loop(
    markets: Annotated[int, typer.Option(help="markets B")] = 4096,
    rounds: Annotated[int, typer.Option(help="rounds timed")] = 30,
    scenario: Annotated[str, typer.Option(
        help="auction (10 seats, adaptive agents, first price) or reputation (the reputation marketplace: state "
             "across rounds, declared actions)")] = "auction",
    as_json: JsonFlag = False,
) -> None:
    """Round-loop market-rounds per second, 10 seats, B=4,096: an auction with adaptive agents, or the reputation
    marketplace."""
    from mecharena.benchmarks.loop import SCENARIOS, run

    if scenario not in SCENARIOS:
        raise fail(ConfigError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}"))
    print_bench(run(**sizes(markets, rounds), scenario=scenario), as_json)


@app.command("ledger")
def bench_ledger(
    markets: Annotated[int, typer.Option(help="markets B")] = 1024,
    rounds: Annotated[int, typer.Option(help="rounds recorded")] = 20,
    repeats: RepeatsOption = 3,
    as_json: JsonFlag = False,
) -> None:
    """Ledger overhead by CPU time: no ledger vs aggregate vs full trace (targets 1.2x and 3x); about a minute."""
    from mecharena.benchmarks.ledger import run

    print_bench(run(**sizes(markets, rounds), repeats=checked_repeats(repeats)), as_json)


@app.command("engine")
def bench_engine(
    markets: Annotated[int, typer.Option(help="markets B")] = 100_000,
    agents_: Annotated[int, typer.Option("--agents", help="bidders n")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Second price at n=10, B=100,000: full engine vs bare NumPy kernel vs scalar reference."""
    from mecharena.benchmarks.engine import run
    from mecharena.benchmarks.timing import LOAD_WINDOWS, load_text

    if markets < 1 or agents_ < 2:
        raise fail(ConfigError(f"markets must be >= 1 and agents >= 2, got markets={markets}, agents={agents_}"))
    result = run(markets=markets, agents=agents_)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"Engine throughput: second price, n={agents_}, B={markets} (medians of interleaved runs)")
    table.add_column("path")
    table.add_column("markets/s (wall)", justify="right")
    table.add_column("markets/s (CPU)", justify="right")
    for path, name, key in (("engine (validated)", "engine", "engine_markets_per_s"),
                            ("bare NumPy kernel", "bare", "bare_kernel_markets_per_s"),
                            ("scalar reference", "scalar", "scalar_reference_markets_per_s")):
        table.add_row(path, f"{result[key]:,.0f}", f"{result['markets_per_cpu_s'][name]:,.0f}")
    out.print(table)
    out.print(f"engine / bare = {result['engine_over_bare']:.2f} (target >= 0.5); "
              f"engine / scalar = {result['engine_over_scalar']:.0f}x (target >= 10), both by CPU time; "
              f"peak memory {result['engine_peak_bytes'] / 2**20:.1f} MiB; "
              f"load {load_text(result)} ({LOAD_WINDOWS})")


@app.command("arena")
def bench_arena(
    steps: Annotated[int, typer.Option("--steps", help="steps per repetition and configuration")] = 2000,
    repeats: RepeatsOption = 5,
    as_json: JsonFlag = False,
) -> None:
    """Steps per second of the sealed-bid arena's PettingZoo ParallelEnv (plain, and with talk)."""
    from mecharena.benchmarks.arena_parallel import run

    print_bench(run(**at_least_one(steps=steps), repeats=checked_repeats(repeats)), as_json)


@app.command("negotiation")
def bench_negotiation(
    episodes: Annotated[int, typer.Option("--episodes", help="episodes per task and path")] = 20,
    repeats: RepeatsOption = 3,
    as_json: JsonFlag = False,
) -> None:
    """Steps per second of one negotiation env, per task: expert vs archetypes, the pure core, PettingZoo."""
    from mecharena.benchmarks.negotiation import run

    print_bench(run(**at_least_one(episodes=episodes), repeats=checked_repeats(repeats)), as_json)


@app.command("designer")
def bench_designer(
    episodes: Annotated[int, typer.Option("--episodes", help="vectorized env size E")] = 1024,
    repeats: RepeatsOption = 5,
    as_json: JsonFlag = False,
) -> None:
    """Referee env steps per second: vectorized at E=1,024 on stage 4, single env (JSON and Gymnasium), and the
    referee on the arena's loop."""
    from mecharena.benchmarks.designer import run

    print_bench(run(**at_least_one(episodes=episodes), repeats=checked_repeats(repeats)), as_json)


@app.command("serve")
def bench_serve(
    steps: Annotated[int, typer.Option("--steps", help="steps timed over one WebSocket session")] = 3000,
    sessions: Annotated[int, typer.Option("--sessions", help="concurrent WebSocket sessions")] = 16,
    startup_timeout: Annotated[float, typer.Option(
        "--startup-timeout", help="seconds to wait for the server to answer /health")] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Referee env steps per second over the OpenEnv WebSocket on loopback: one session and many (target 1,500)."""
    from mecharena.benchmarks.serve import run

    at_least_one(steps=steps, sessions=sessions)
    if not 0 < startup_timeout <= 3600:
        raise fail(ConfigError(f"startup-timeout must be in (0, 3600] seconds, got {shown_value(startup_timeout)}"))
    try:
        result = run(steps=steps, sessions=sessions, startup_timeout=startup_timeout)
    except MechArenaError as exc:
        raise fail(exc) from None
    print_bench(result, as_json)


@app.command("llm-train")
def bench_llm_train(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the runs (data, models, logs)")] = Path(
        "runs/bench-llm-train"),
    scale: Annotated[float, typer.Option("--scale", help="multiplies the SFT and GRPO steps (0.1: a quick check)")] = 1.0,
    held_out: Annotated[int, typer.Option("--held-out", help="held-out states scored before and after")] = 32,
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads")] = 2,
    tasks: Annotated[list[str] | None, typer.Option(
        "--task", help="designer:2 and/or negotiation:single_trade (default: both)")] = None,
    sampling: Annotated[str, typer.Option("--sampling", help="GRPO's sampling: constrained or free")] = "constrained",
    seed: Annotated[int, seed_option("seed of the data, the model and the training")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """SFT then GRPO on a small model built here, for the referee and the negotiation economy: held-out reward
    before and after (95% CI) and the fraction of GRPO groups with reward variance (about 10 minutes)."""
    from mecharena.benchmarks.llm_train import run

    at_least_one(held_out=held_out, threads=threads)
    if not 0 < scale <= 10:
        raise fail(ConfigError(f"scale must be in (0, 10], got {shown_value(scale)}"))
    try:
        with stdout_to_stderr():
            result = run(out_dir, tasks=tuple(tasks or ("designer:2", "negotiation:single_trade")), seed=seed,
                         held_out=held_out, scale=scale, threads=threads, sampling=sampling)
    except MechArenaError as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"LLM training pipeline ({result['wall_s']:.0f} s wall, {result['threads']} threads)")
    for column in ("task", "reward base -> SFT -> GRPO", "GRPO - base [95%]", "GRPO - SFT [95%]",
                   "groups with variance", "valid base/SFT/GRPO"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for r in result["results"]:
        reward, valid = r["reward"], r["valid"]
        table.add_row(r["task"], f"{reward['base']:.3f} -> {reward['sft']:.3f} -> {reward['grpo']:.3f}",
                      *(f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]" for g in (r["gain_over_base"],
                                                                                        r["gain_over_sft"])),
                      f"{r['groups_with_variance']:.2f}", f"{valid['base']:.2f}/{valid['sft']:.2f}/{valid['grpo']:.2f}")
    out.print(table)
