"""The MCP shell: the arena as Model Context Protocol tools, so assistants can drive it.

``mecharena mcp`` (or ``python -m mecharena.server.mcp``) serves six tools over stdio or
streamable HTTP (``http://HOST:PORT/mcp``), built on the official ``mcp`` SDK's ``FastMCP``:

* ``list_mechanisms``: every registered mechanism with its rule, version, config fields and the
  properties its default config promises (``mecharena mechanisms --json``).
* ``simulate``: repeated markets of one mechanism against a population; the metrics with 95%
  intervals, the same JSON object as ``mecharena simulate --json``.
* ``fuzz``: incentive fuzzing, the most profitable deviation and the exploitability with its 95%
  interval (``mecharena fuzz --json``); a small default budget so a call returns in seconds;
  ``store=true`` writes a found exploit's failure report into the server's exploit library.
* ``ring``: a ring across rounds that no member gains by leaving (``mecharena ring --json``), with
  smaller default settings than the CLI's so that a call stays within the work limit; ``store=true``
  writes a ring whose gain is an exploit into the library, its certificate with it.
* ``evaluate_designer``: a designer policy on a curriculum stage's held-out benchmark
  (``mecharena designer eval --json``).
* ``exploits``: the server's exploit library, every report or one by id or unique id prefix.

Arguments are checked against each tool's published input schema before anything runs: an
unknown argument, a wrong type (no coercion: ``"5"`` is not an integer) or a value out of range
gets a tool error result (``isError``) whose message names the argument, the value and what is
allowed, e.g. ``markets must be a finite int in [1, 1000000], got 0``. An arena error
(:class:`~mecharena.core.errors.MechArenaError`, e.g. an unknown mechanism with its "did you mean")
comes back the same way with the arena's message. Nothing raises across the protocol; the server
keeps serving. Results are JSON objects, sent as structured content and as the same JSON in a
text block.

File paths are the server's, never the client's: the exploit library is fixed when the server
starts, simulations keep no ledger, and designer policies that load a file (``constant:FILE``,
``learned:FILE``) are not offered, so a network client cannot make the server read or write paths
of its choosing.

Tools run in a worker thread, so a long call (fuzzing, training the learned designer, ~15 s)
does not stall other HTTP sessions. Importing this module loads the MCP SDK and nothing heavy of
the arena; the arena's layers are imported by the tools that need them.
"""

import argparse
import functools
import inspect
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.tools import Tool
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import ConfigDict, Field, ValidationError, WithJsonSchema

from mecharena import __version__
from mecharena.core import settings
from mecharena.core.config import Seed, StrictModel, explain
from mecharena.core.errors import ConfigError, MechArenaError

Transport = Literal["stdio", "http"]
TRANSPORTS: tuple[str, ...] = ("stdio", "http")
DEFAULT_LIBRARY = "exploits"
HTTP_PATH = "/mcp"

MAX_MARKETS = 1_000_000
MAX_ROUNDS = 10_000
FUZZ = settings.FuzzSettings()  # fuzz's defaults and bounds (the budget aside: settings.MCP_BUDGET)
MCP_RING = settings.MCP_RING  # ring's defaults here (its bounds: settings.RingSettings)
DESIGNER_POLICIES = Literal["random", "greedy", "oracle", "learned"]

INSTRUCTIONS = """Mechanism Arena stress-tests economic mechanisms (auctions, double auctions, posted
prices, public-goods rules) against populations of strategic agents. Start with list_mechanisms
for the mechanism ids and their config fields. Populations are TYPE[(name=value,...)]:COUNT lists,
e.g. "truthful:5", "bne:3", "cartel:3,truthful:3", "dropout(outside=0.02):4,exp3:2"; a group may
draw values from its own prior, e.g. "bne(values=uniform:high=2):1,bne:1". simulate measures outcomes
with 95% intervals; fuzz searches for profitable deviations (exploitability); ring searches a
coalition across rounds that no member gains by leaving; evaluate_designer scores a designer policy
on the referee benchmark; exploits lists stored failure reports. Every run is seeded and
reproducible."""

# --- argument types ------------------------------------------------------------------------------
# Bounds here are the tool's contract with its caller (published in the input schema); the arena
# checks everything again with its own rules.

MechanismId = Annotated[str, Field(description="mechanism id, e.g. second_price (see list_mechanisms)")]
PopulationSpec = Annotated[str, Field(description=(
    "agents as TYPE[(name=value,...)]:COUNT[,...], e.g. truthful:5, bne:3, cartel:3,truthful:3, a group with "
    "its own value prior, e.g. bne(values=uniform:high=2):1,bne:1, or a Dirichlet mixture drawn per seed, e.g. "
    "dirichlet(n=10,alpha=1):truthful,cartel,dropout"))]
MechanismConfig = Annotated[dict[str, Any] | None, Field(description=(
    "config fields of the mechanism, e.g. {\"reserve_price\": 0.5}; default: the mechanism's defaults "
    "(fields and allowed values: list_mechanisms)"))]
Markets = Annotated[int, Field(ge=1, le=MAX_MARKETS, description="independent markets B")]
Rounds = Annotated[int, Field(ge=1, le=MAX_ROUNDS, description="rounds per market T")]
#: Work bound of one call, in market-rounds: simulate's markets x rounds; fuzz's budget x restarts x
#: markets x rounds plus eval_markets x rounds. About a minute of one core at the most.
MAX_WORK = 10_000_000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
Values = Annotated[str, Field(description=(
    "value distribution: uniform | power:shape=2 | exponential:shape=3 (empirical ones, which read a file, "
    "are not offered)"))]


def _rules_type(model: type[StrictModel], what: str) -> Any:
    """A ``dict | None`` argument whose published schema is ``model``'s (its fields, defaults and
    ranges), validated by the arena (``model.build``) so that its messages are the arena's."""
    return Annotated[Annotated[dict[str, Any], WithJsonSchema(model.model_json_schema())] | None, Field(
        description=f"{what}; fields left out keep their defaults")]


# --- the tools -----------------------------------------------------------------------------------
# Each tool is a thin async wrapper: validate (done by the SDK against the strict argument model),
# then call the arena's own function in a worker thread.

async def _in_thread(function, /, *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs))


def _list_mechanisms() -> dict[str, Any]:
    from mecharena import mechanisms

    return {"mechanisms": [mechanisms.describe(m) for _, m in mechanisms.REGISTRY.items()]}


def _simulate(mechanism: str, population: str, config: dict[str, Any] | None, markets: int, rounds: int,
              seed: int, values: str, information: dict[str, Any] | None,
              enforcement: dict[str, Any] | None) -> dict[str, Any]:
    from mecharena.metrics.run import simulate_summary

    check_values(values)
    return simulate_summary(mechanism, config or {}, population, markets, rounds, seed, values, information,
                            enforcement)


def _fuzz(library: Path, store: bool, mechanism: str, population: str, config: dict[str, Any] | None,
          information: dict[str, Any] | None, enforcement: dict[str, Any] | None, values: str, seed: int,
          threshold: float, on_trial, **search: Any) -> dict[str, Any]:
    from mecharena.fuzz.cell import fuzz_cell

    check_values(values)
    _, data = fuzz_cell(mechanism, config or {}, population, information or {}, enforcement or {}, values, seed,
                        threshold=threshold, library=library if store else None, on_trial=on_trial, **search)
    return data


def _ring(library: Path, store: bool, mechanism: str, population: str, config: dict[str, Any] | None,
          information: dict[str, Any] | None, enforcement: dict[str, Any] | None, values: str, seed: int,
          threshold: float, on_phase, **search: Any) -> dict[str, Any]:
    from mecharena import mechanisms
    from mecharena.fuzz.cell import ring_cell
    from mecharena.fuzz.ring_policy import ring_work

    check_values(values)
    work, formula = ring_work(mechanisms.get(mechanism), **{k: search[k] for k in (
        "phases", "generations", "defection_generations", "markets", "rounds", "eval_markets", "features",
        "credible")},
        population=settings.RingSettings().population)
    check_work("ring", work, formula, "markets, rounds, phases, generations or defection_generations")
    _, data = ring_cell(mechanism, config or {}, population, information or {}, enforcement or {}, values, seed,
                        threshold=threshold, library=library if store else None, on_phase=on_phase, **search)
    return data


def _evaluate_designer(policy: str, stage: int, episodes: int, seed: int) -> dict[str, Any]:
    from mecharena.designer.evaluate import evaluate
    from mecharena.designer.policies import make_policy
    from mecharena.designer.population import check_stage

    stage = check_stage(stage)
    return evaluate(make_policy(policy, stage, seed=seed), stage, episodes, seed)


def _exploits(library: Path, exploit: str | None) -> dict[str, Any]:
    from mecharena.fuzz.library import Library

    found = Library(library)
    if exploit is None:
        return {"library": str(library), "exploits": [r.model_dump(mode="json") for r in found.list()]}
    return {"library": str(library), "exploit": found.get(exploit).model_dump(mode="json")}


def _tools(library: Path) -> list[Tool]:
    """The tools, as functions whose annotated parameters become the input schemas."""
    from mecharena.mechanisms.policy import Enforcement, InformationPolicy

    Information = _rules_type(InformationPolicy, "what agents are told (information policy)")
    Rules = _rules_type(Enforcement, "fines and audits (enforcement)")

    async def list_mechanisms() -> dict[str, Any]:
        """Every mechanism: id, version, rule, description, config fields (default, allowed values) and
        the properties its default config promises (truthful, IR, budget balance...)."""
        return await _in_thread(_list_mechanisms)

    async def simulate(
        mechanism: MechanismId,
        population: PopulationSpec,
        config: MechanismConfig = None,
        markets: Markets = 1000,
        rounds: Rounds = 10,
        seed: Seed = 0,
        values: Values = "uniform",
        information: Information = None,
        enforcement: Rules = None,
    ) -> dict[str, Any]:
        """Simulate repeated markets of one mechanism against a population of agents. Returns the
        resolved setup and metrics (revenue, efficiency, welfare, bidder_surplus, participation,
        invalid_rate), each {"mean", "ci95"} with a 95% interval over markets. markets x rounds must
        be at most 10,000,000."""
        check_work("simulate", markets * rounds, f"markets x rounds = {markets} x {rounds}")
        return await _in_thread(_simulate, mechanism, population, config, markets, rounds, seed, values,
                                information, enforcement)

    async def fuzz(
        ctx: Context,
        mechanism: MechanismId,
        population: Annotated[str, Field(description=(
            "the population whose own policy deviations are scored against, e.g. truthful:5"))],
        config: MechanismConfig = None,
        deviators: settings.Deviators = FUZZ.deviators,
        families: Annotated[list[str] | None, Field(description=(
            "deviation families to search, e.g. [\"shading\", \"sybil\"]; default: every family that applies"))
        ] = None,
        budget: settings.Budget = settings.MCP_BUDGET,
        seed: Seed = 0,
        information: Information = None,
        enforcement: Rules = None,
        values: Values = "uniform",
        sampler: Annotated[settings.Sampler, Field(description="Optuna sampler")] = FUZZ.sampler,
        restarts: settings.Restarts = FUZZ.restarts,
        markets: settings.Markets = FUZZ.markets,
        rounds: settings.Rounds = FUZZ.rounds,
        eval_markets: settings.EvalMarkets = FUZZ.eval_markets,
        threshold: settings.Threshold = FUZZ.threshold,
        store: Annotated[bool, Field(description=(
            "write a failure report into the server's exploit library when an exploit is found"))] = False,
    ) -> dict[str, Any]:
        """Search for profitable deviations from a population's own policy (incentive fuzzing). Returns
        the exploitability (the best deviation's gain per agent and round, re-evaluated on a fresh
        seed: {"mean", "ci95"}), the best deviation, the families searched or skipped, whether it is
        an exploit, and the stored report's id (store=true). The work, budget x restarts x markets x
        rounds + eval_markets x rounds, must be at most 10,000,000 market-rounds."""
        check_work("fuzz", (budget * restarts * markets + eval_markets) * rounds,
                   f"(budget x restarts x markets + eval_markets) x rounds = ({budget} x {restarts} x {markets} "
                   f"+ {eval_markets}) x {rounds}")

        def on_trial(_trial: Any, done: int) -> None:  # progress notifications (when the client asks)
            anyio.from_thread.run(ctx.report_progress, done, budget)

        return await _in_thread(_fuzz, library, store, mechanism, population, config, information, enforcement,
                                values, seed, threshold, on_trial, families=families, deviators=deviators,
                                budget=budget, sampler=sampler, restarts=restarts, markets=markets,
                                rounds=rounds, eval_markets=eval_markets)

    async def ring(
        ctx: Context,
        mechanism: MechanismId,
        population: Annotated[str, Field(description=(
            "the population; its first K agents form the ring, e.g. bne:4"))],
        config: MechanismConfig = None,
        deviators: settings.RingMembers = settings.RingSettings().deviators,
        seed: Seed = 0,
        information: Information = None,
        enforcement: Rules = None,
        values: Values = "uniform",
        rounds: settings.Rounds = MCP_RING["rounds"],
        phases: settings.Phases = MCP_RING["phases"],
        generations: settings.Generations = MCP_RING["generations"],
        defection_generations: settings.DefectionGenerations = MCP_RING["defection_generations"],
        markets: settings.Markets = MCP_RING["markets"],
        eval_markets: settings.EvalMarkets = MCP_RING["eval_markets"],
        features: settings.RingFeatures | None = None,
        credible: Annotated[bool, Field(description=settings.RingSettings.model_fields["credible"].description)
                            ] = settings.RingSettings().credible,
        threshold: settings.Threshold = FUZZ.threshold,
        store: Annotated[bool, Field(description=(
            "write a failure report into the server's exploit library when the ring's gain is an exploit"))] = False,
    ) -> dict[str, Any]:
        """Search a ring that holds across rounds: a policy the first K agents share that no member gains by
        leaving, where members see of each other only what the information policy reveals (e.g.
        {"competing_bids": true}). Returns the ring's agent, its gain per member and round on a fresh seed
        ({"mean", "ci95"}), the best defection found and its gain (the certificate), "enforced" (no
        defection pays), "credible" (no member gains by not carrying out the ring's threat, with that
        gain), what the ring does and what members do once a partner is caught. The search's
        market-rounds (an upper bound from phases, generations, markets and rounds) must be at most
        10,000,000; mecharena ring runs larger searches."""

        def on_phase(done: int) -> None:
            anyio.from_thread.run(ctx.report_progress, done, phases)

        return await _in_thread(_ring, library, store, mechanism, population, config, information, enforcement,
                                values, seed, threshold, on_phase, deviators=deviators, rounds=rounds, phases=phases,
                                generations=generations, defection_generations=defection_generations,
                                markets=markets, eval_markets=eval_markets, features=tuple(features or ()),
                                credible=credible)

    async def evaluate_designer(
        policy: Annotated[DESIGNER_POLICIES, Field(description=(
            "designer policy: random, greedy (hand rule), oracle (knows the population) or learned (a "
            "contextual bandit trained for the stage first, ~15 s)"))] = "greedy",
        stage: Annotated[int, Field(ge=1, le=5, description="curriculum stage 1-5")] = 1,
        episodes: Annotated[int, Field(ge=1, le=1000, description="episodes per held-out population")] = 4,
        seed: Seed = 0,
    ) -> dict[str, Any]:
        """Score a designer policy (it picks the auction rules each round) on the stage's held-out
        benchmark of 20 populations. Returns the mean reward per step with its 95% interval over
        populations, the mean reward components and the per-population scores. The oracle simulates
        its whole menu of mechanisms every step: episodes x 20 x 25 steps x that menu must be at most
        10,000,000 (about 45 episodes)."""
        check_designer_work(policy, episodes)
        return await _in_thread(_evaluate_designer, policy, stage, episodes, seed)

    async def exploits(
        exploit: Annotated[str | None, Field(description=(
            "a report id or unique id prefix to show in full; default: list every report"))] = None,
    ) -> dict[str, Any]:
        """The server's exploit library (failure reports written by fuzz with store=true): every report,
        or one by id or unique id prefix. Each report names the mechanism, population, deviation,
        its gain with a 95% interval, frequency, severity, mitigation and regression command."""
        return await _in_thread(_exploits, library, exploit)

    reads = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)
    writes = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
    titles = {list_mechanisms: ("List mechanisms", reads), simulate: ("Simulate a mechanism", reads),
              fuzz: ("Fuzz a mechanism for exploits", writes), ring: ("Search a self-enforcing ring", writes),
              evaluate_designer: ("Evaluate a designer policy", reads), exploits: ("Exploit library", reads)}
    return [strict(Tool.from_function(fn, title=title, description=inspect.cleandoc(fn.__doc__ or ""),
                                      annotations=annotations))
            for fn, (title, annotations) in titles.items()]


def check_work(tool: str, work: int, formula: str, lower: str = "markets, rounds, budget or restarts") -> None:
    """Refuse a call whose work is over :data:`MAX_WORK` market-rounds (before anything runs).

    Raises:
        ConfigError: naming the arguments, the work they ask for and the limit.
    """
    if work > MAX_WORK:
        raise ConfigError(f"{tool}: {formula} = {work:,} market-rounds, over the limit of {MAX_WORK:,} per call; "
                          f"lower {lower}")


def check_values(values: str) -> None:
    """Refuse a value distribution that reads a file: paths are the server's, never a client's.

    Raises:
        ConfigError: naming the distribution.
    """
    from mecharena.agents.values import reads_file

    if reads_file(values):
        raise ConfigError(f"values {values!r} reads a file on the server, which this server does not offer; "
                          f"use uniform, power or exponential")


def check_designer_work(policy: str, episodes: int) -> None:
    """:func:`check_work` for a held-out evaluation: its environment steps, each about a market-round
    of work; the oracle's count once per arm it simulates to choose each one (the menu and at most
    ``TOP`` grid mechanisms).

    Raises:
        ConfigError: as :func:`check_work`, naming ``episodes``.
    """
    from mecharena.designer.core import HORIZON
    from mecharena.designer.policies import TOP, menu
    from mecharena.designer.population import HELD_OUT_SIZE

    factors = {"episodes": episodes, "populations": HELD_OUT_SIZE, "steps": HORIZON}
    if policy == "oracle":
        factors["arms"] = len(menu()) + TOP
    check_work("evaluate_designer", math.prod(factors.values()),
               f"{' x '.join(factors)} = {' x '.join(map(str, factors.values()))}", "episodes")


def transport_security(host: str) -> TransportSecuritySettings | None:
    """DNS-rebinding protection for a server bound to ``host`` (the MCP server and ``mecharena serve``).

    On a loopback host, requests must name a loopback host with a port (``Host: 127.0.0.1:8000``)
    and come from no origin or a loopback one, so neither a cross-origin page nor a rebound DNS
    name can reach the server. Other hosts get none (their clients use names we cannot know;
    ``mecharena serve`` asks them for a bearer token instead).
    """
    if host not in LOOPBACK_HOSTS:
        return None
    return TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                     allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                                     allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])


def strict(tool: Tool) -> Tool:
    """``tool`` with an argument model that refuses unknown arguments, coercion and NaN.

    FastMCP's argument models ignore unknown keys and coerce (``"5"`` -> 5); the arena's
    :class:`~mecharena.core.config.StrictModel` forbids both, and its ``allowed`` gives
    :func:`~mecharena.core.config.explain` the words for each argument's range. The published
    schema then says ``additionalProperties: false``.
    """
    loose = tool.fn_metadata.arg_model
    model = type(tool.name, (loose, StrictModel), {"__module__": __name__, "model_config": ConfigDict(strict=True)})
    return tool.model_copy(update={"fn_metadata": tool.fn_metadata.model_copy(update={"arg_model": model}),
                                   "parameters": model.model_json_schema(by_alias=True)})


class ArenaMCP(FastMCP):
    """FastMCP whose tool errors carry the arena's messages: an invalid argument as
    :func:`~mecharena.core.config.explain` words it, a :class:`MechArenaError` as raised."""

    def __init__(self, tools: list[Tool], **settings: Any) -> None:
        self.argument_models = {tool.name: tool.fn_metadata.arg_model for tool in tools}
        super().__init__(tools=tools, **settings)
        self._mcp_server.version = __version__  # FastMCP would report the mcp SDK's version as the server's

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            return await super().call_tool(name, arguments)
        except ToolError as exc:
            cause = exc.__cause__
            model = self.argument_models.get(name)
            if isinstance(cause, ValidationError) and model is not None and cause.title == model.__name__:
                raise ToolError(f"invalid arguments for {name}: {explain(model, cause)}") from None
            if isinstance(cause, MechArenaError):
                raise ToolError(str(cause)) from None
            raise


def build_server(*, library: str | Path = DEFAULT_LIBRARY, host: str = "127.0.0.1", port: int = 8000,
                 log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING") -> FastMCP:
    """The MCP server with the arena's tools.

    Args:
        library: the exploit library directory of the ``exploits`` tool and of ``fuzz`` with
            ``store=true`` (created by the first stored report).
        host, port: where streamable HTTP listens (unused over stdio). On a loopback host the
            SDK's DNS-rebinding protection is on.
        log_level: the SDK's and uvicorn's log level (logs go to stderr).

    Returns:
        A ``FastMCP``: ``.run("stdio")``, ``.run("streamable-http")``, or ``.streamable_http_app()``
        to mount it in an ASGI app.
    """
    return ArenaMCP(_tools(Path(library)), name="mecharena", instructions=INSTRUCTIONS, host=host, port=port,
                    streamable_http_path=HTTP_PATH, log_level=log_level, transport_security=transport_security(host))


def run(transport: Transport = "stdio", host: str = "127.0.0.1", port: int = 8000, *,
        library: str | Path = DEFAULT_LIBRARY) -> None:
    """Serve the tools until stdin closes (stdio) or the process is interrupted (http).

    Args:
        transport: ``stdio`` (a client spawns the server) or ``http`` (streamable HTTP at
            ``http://HOST:PORT/mcp``).
        host, port: the HTTP address.
        library: the exploit library directory (see :func:`build_server`).

    Raises:
        ConfigError: an unknown transport or a port outside [1, 65535].
    """
    if transport not in TRANSPORTS:
        raise ConfigError(f"transport must be one of {', '.join(map(repr, TRANSPORTS))}, got {transport!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port must be an integer in [1, 65535], got {port!r}")
    if transport == "stdio":
        build_server(library=library).run("stdio")
        return
    server = build_server(library=library, host=host, port=port)
    print(f"mecharena MCP server: http://{host}:{port}{HTTP_PATH} (streamable HTTP)", file=sys.stderr, flush=True)
    server.run("streamable-http")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mecharena.server.mcp",
                                     description="Serve Mechanism Arena tools over MCP.")
    parser.add_argument("--transport", choices=TRANSPORTS, default="stdio", help="stdio (default) or http")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--library", default=DEFAULT_LIBRARY, help="exploit library directory (default exploits)")
    args = parser.parse_args(argv)
    try:
        run(args.transport, args.host, args.port, library=args.library)
    except MechArenaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
