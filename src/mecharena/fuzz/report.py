"""Failure reports: one profitable deviation written up so that anyone can check it again.

A :class:`FailureReport` carries the white paper's fields: what was attacked (mechanism, version,
config, population and policies, the rule under attack), who deviates and how (family, params,
agent spec, the deviators' seats), what it earns (the fresh, independent-seed gain with its 95%
interval, how often it pays, its severity), the evidence (two full-mode ledgers, without and with
the deviation, on the same seed, and the gain recomputed from their events), the family's
mitigation and the regression check that says when the exploit is closed.

Gain from a pair of ledgers (``recorded_gain``): with ``K`` deviators whose seats are
``agent_seats(owner, A + K)[A:]`` of each ledger's owner map (``A`` agents keep their place before
them: a seller deviator's buyers) and ``T`` rounds,

    gain = mean over markets b of (sum_t sum_{i in seats} u_dev[t, b, i] - u_base[t, b, i]) / (K T)

computed in the same order of floating-point operations as :class:`~mecharena.fuzz.score.Scorer`,
so it equals ``Scorer(target).score(deviation, seed=trace seed, markets=B, rounds=T).mean`` bit
for bit.

Severity is the fresh gain relative to welfare per agent and round without the deviation:
``low`` below ``SEVERITY_MEDIUM`` (2%), ``medium`` below ``SEVERITY_HIGH`` (10%), ``high`` from there
(and ``high`` for any positive gain in a market that creates no welfare).

The report ``id`` is the first 12 hex digits of the SHA-256 of the exploit's identity: the target
cell (mechanism, version, validated config, population, information, enforcement, values; not its
markets, rounds or seed, which fuzzing ignores) and the deviation (family, params, deviators).
The same exploit found twice gets the same id; the trace seed is derived from the id, so its
ledgers are a function of the id alone.
"""

import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mecharena import mechanisms
from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.types import FloatArray, IntArray
from mecharena.fuzz.families import FAMILIES
from mecharena.fuzz.score import Deviation, agent_seats, deviated_population, replace_cell
from mecharena.fuzz.search import FuzzResult
from mecharena.ledger import LedgerError, connect, read_meta, record_episode
from mecharena.ledger.meta import ledger_directory
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.metrics.harness import Cell

ID_LENGTH = 12
TRACE_MARKETS = 200
SEVERITY_MEDIUM = 0.02
SEVERITY_HIGH = 0.10
SEVERITY_RULE = (f"relative = gain / welfare per agent and round without the deviation; low < {SEVERITY_MEDIUM}, "
                 f"medium < {SEVERITY_HIGH}, high >= {SEVERITY_HIGH} (high for any gain where welfare is 0)")
TRACES = "traces"

ParamValue = bool | int | float | str  # str: found tables (best_response bids, ring_table tables)


class AgentsInvolved(StrictModel):
    """Who deviates: K agents, their own seats in the deviated market and their agent type."""

    deviators: int = Field(ge=1)
    after: int = Field(0, ge=0, description=(
        "agents before the deviators that keep their place (a seller deviator in a two-sided market comes "
        "after the buyers)"))
    seats: list[int] = Field(description="own seats of the deviators (agent_seats of the deviated owner map)")
    identities: list[int] = Field(description="every seat the deviators control (false names included)")
    agent: str = Field(description="agent spec the deviators play")
    population: str = Field(description="the deviated population spec")


class Strategy(StrictModel):
    """The deviation: a family, its parameters and the agent spec they make."""

    family: str
    params: dict[str, ParamValue]
    agent: str
    summary: str


class GainEstimate(StrictModel):
    """The deviators' gain per agent and round on a fresh seed, with its 95% interval over markets."""

    mean: float
    ci95: tuple[float, float]
    baseline: float = Field(description="their utility per agent and round without the deviation")
    markets: int
    rounds: int
    seed: int


class Severity(StrictModel):
    """The gain relative to welfare per agent and round, and its label."""

    relative: float | None = Field(description="gain / welfare per agent and round; None when welfare is 0")
    welfare_per_agent_round: float
    label: Literal["low", "medium", "high"]
    rule: str = SEVERITY_RULE


class Trace(StrictModel):
    """Two full-mode ledgers on the same seed, and the gain computed from their events."""

    baseline: str = Field(description="ledger without the deviation, relative to the library directory")
    deviated: str = Field(description="ledger with the deviation, relative to the library directory")
    seed: int
    markets: int
    rounds: int
    recorded_gain: float


class Regression(StrictModel):
    """How to re-check the exploit against a (repaired) mechanism."""

    command: str
    threshold: float
    rule: str


class FailureReport(StrictModel):
    """A profitable deviation from a mechanism's intended play, with the evidence to check it."""

    id: str
    mechanism: str
    mechanism_version: int
    config: dict[str, Any]
    population: str
    information: InformationPolicy
    enforcement: Enforcement
    values: str
    affected_rule: str
    agents_involved: AgentsInvolved
    strategy: Strategy
    gain: GainEstimate
    frequency: float = Field(ge=0, le=1, description="share of markets where the deviators gained")
    severity: Severity
    trace: Trace
    mitigation: str
    regression: Regression
    search: dict[str, Any] = Field(default_factory=dict, description="the fuzzing run that found it")

    def deviation(self) -> Deviation:
        """The stored deviation, ready for :meth:`~mecharena.fuzz.score.Scorer.score`."""
        return Deviation(self.strategy.family, tuple(sorted(self.strategy.params.items())),
                         self.agents_involved.deviators, self.agents_involved.after)

    def target(self, **fields: Any) -> Cell:
        """The attacked cell (markets, rounds and seed from the fresh evaluation), ``fields`` changed."""
        cell = Cell(mechanism=self.mechanism, config=self.config, population=self.population,
                    information=self.information, enforcement=self.enforcement, values=self.values,
                    markets=self.gain.markets, rounds=self.gain.rounds, seed=self.gain.seed)
        return replace_cell(cell, **fields) if fields else cell


def exploit_id(target: Cell, deviation: Deviation) -> str:
    """The report id: a short hash of the target's identity and the deviation (see the module docstring)."""
    mechanism = mechanisms.get(target.mechanism)
    identity = {
        "mechanism": mechanism.name,
        "mechanism_version": mechanism.version,
        "config": mechanism.config(target.config).model_dump(mode="json"),
        "population": target.population,
        "information": target.information.model_dump(mode="json"),
        "enforcement": target.enforcement.model_dump(mode="json"),
        "values": target.values,
        "deviation": {"family": deviation.family, "params": dict(deviation.params), "deviators": deviation.deviators,
                      **({"after": deviation.after} if deviation.after else {})},  # buyers' ids unchanged
    }
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def trace_seed(report_id: str) -> int:
    """The seed of an exploit's trace ledgers, derived from its id."""
    return int(report_id, 16) % (2**31 - 1)


def severity(gain: float, welfare: float) -> Severity:
    """Label ``gain`` by its size relative to ``welfare`` per agent and round (see the module docstring)."""
    if welfare <= 0:
        return Severity(relative=None, welfare_per_agent_round=welfare, label="high" if gain > 0 else "low")
    relative = gain / welfare
    label = "low" if relative < SEVERITY_MEDIUM else "medium" if relative < SEVERITY_HIGH else "high"
    return Severity(relative=relative, welfare_per_agent_round=welfare, label=label)


def regression_command(library_dir: str | os.PathLike[str], mechanism: str, config: dict[str, Any], rounds: int,
                       threshold: float) -> str:
    """The shell command that re-checks every library exploit against ``mechanism`` with ``config``."""
    parts = ["mecharena", "regress", "--library", str(library_dir), "--mechanism", mechanism]
    for key, value in config.items():
        text = value if isinstance(value, str) else json.dumps(value)
        parts += ["--set", f"{key}={text}"]
    parts += ["--rounds", str(rounds), "--threshold", repr(threshold)]
    return shlex.join(parts)


def _seat_utility(directory: Path, deviators: int, after: int = 0) -> tuple[FloatArray, IntArray, int]:
    """(B,) the utility per agent and round of the ``deviators`` agents after the first ``after`` in one
    ledger, its market ids, rounds."""
    meta = read_meta(directory)
    if meta.mode != "full":
        raise LedgerError(f"ledger {str(directory)!r} must be recorded in mode 'full' to compute a gain, "
                          f"got mode {meta.mode!r}")
    seats = agent_seats(np.asarray(meta.owner, dtype=np.int64), after + deviators)[after:]
    if seats.size != deviators:
        raise LedgerError(f"ledger {str(directory)!r} has {seats.size + after} agents, fewer than the {after} before "
                          f"and the {deviators} deviators")
    con = connect(directory)
    try:
        seat_list = ", ".join(str(int(s)) for s in seats)
        rows = con.execute(f"SELECT round, market, utility FROM events WHERE seat IN ({seat_list}) "
                           f"ORDER BY round, market, seat").fetchnumpy()
    finally:
        con.close()
    b, k = meta.markets, seats.size
    r = rows["utility"].size // max(b * k, 1)
    if r < 1 or rows["utility"].size != r * b * k:
        raise LedgerError(f"ledger {str(directory)!r} must hold whole rounds of {b} markets x {k} deviator seats, "
                          f"got {rows['utility'].size} events")
    utility = np.asarray(rows["utility"], dtype=np.float64).reshape(r, b, k)
    markets = np.asarray(rows["market"], dtype=np.int64).reshape(r, b, k)[0, :, 0]
    total = np.zeros(b)
    for t in range(r):  # the order of Scorer's sums, so the two agree bit for bit
        total += utility[t].sum(axis=1)
    return total / (k * r), markets, r



def ledger_gain(baseline: str | os.PathLike[str], deviated: str | os.PathLike[str], deviators: int,
                after: int = 0) -> float:
    """The deviators' gain per agent and round computed from two full-mode ledgers' events.

    Args:
        baseline: ledger without the deviation.
        deviated: ledger with it, on the same seed, markets and rounds.
        deviators: K; their seats are ``agent_seats(owner, K)`` of each ledger's own owner map.

    Returns:
        Mean over markets of the per-agent, per-round utility difference.

    Raises:
        LedgerError: a ledger is missing, corrupt, not full-mode, or the two do not pair up.
    """
    base, base_markets, base_rounds = _seat_utility(ledger_directory(baseline), deviators, after)
    dev, dev_markets, dev_rounds = _seat_utility(ledger_directory(deviated), deviators, after)
    if base_rounds != dev_rounds or not np.array_equal(base_markets, dev_markets):
        raise LedgerError(f"ledgers {str(baseline)!r} and {str(deviated)!r} must cover the same markets and rounds, "
                          f"got {base_markets.size} markets x {base_rounds} rounds and "
                          f"{dev_markets.size} markets x {dev_rounds} rounds")
    return float((dev - base).mean())


def _record_trace(cell: Cell, directory: Path) -> None:
    """Record ``cell`` into ``directory`` unless an identical closed recording is already there."""
    if directory.is_dir() and any(directory.iterdir()):
        meta = read_meta(directory)
        if meta.status == "closed" and meta.mode == "full" and meta.cell == cell.model_dump(mode="json"):
            return  # the trace is a function of the report id: the same cell gives the same ledger
        raise LedgerError(f"trace directory {str(directory)!r} already holds a different ledger; remove it or use "
                          f"another library directory")
    record_episode(cell, directory, mode="full", background=False)


def build_report(result: FuzzResult, library_dir: str | os.PathLike[str], *,
                 trace_markets: int = TRACE_MARKETS) -> FailureReport:
    """Write up the best deviation of a fuzzing run, recording its trace ledgers.

    The ledgers go to ``library_dir/traces/ID/{baseline,deviated}``: ``trace_markets`` markets and
    the search's rounds, on a seed derived from the id; existing identical traces are kept.

    Args:
        result: a fuzzing run that found a deviation (``best`` and ``fresh`` set).
        library_dir: the exploit library directory (created if missing).
        trace_markets: B of the trace ledgers.

    Returns:
        The report (not yet added to a library; see :class:`mecharena.fuzz.library.Library`).

    Raises:
        ConfigError: the run found nothing, or ``trace_markets`` < 1.
        LedgerError: the trace directory holds a different ledger, or recording failed.
    """
    if result.best is None or result.fresh is None:
        raise ConfigError("result.best must be a scored deviation to report, got None (the fuzzing run found nothing)")
    if trace_markets < 1:
        raise ConfigError(f"trace_markets must be >= 1, got {trace_markets}")
    target, deviation, fresh = result.target, result.best.deviation, result.fresh
    mechanism = mechanisms.get(target.mechanism)
    config = mechanism.config(target.config).model_dump(mode="json")
    family = FAMILIES.get(deviation.family)
    agent = deviation.agent_spec
    report_id = exploit_id(target, deviation)
    seed = trace_seed(report_id)
    found = result.response if deviation.family == "best_response" else None
    rounds = int(result.search.get("rounds", fresh.rounds))
    threshold = float(result.search.get("threshold", 1e-3))

    library = Path(library_dir)
    relative = {name: f"{TRACES}/{report_id}/{name}" for name in ("baseline", "deviated")}
    base_cell = replace_cell(target, seed=seed, markets=trace_markets, rounds=rounds)
    population = deviated_population(target.population, seed, deviation.deviators, agent, deviation.after)
    dev_cell = replace_cell(base_cell, population=population)
    _record_trace(base_cell, library / relative["baseline"])
    _record_trace(dev_cell, library / relative["deviated"])
    recorded = ledger_gain(library / relative["baseline"], library / relative["deviated"], deviation.deviators,
                           deviation.after)

    owner = np.asarray(read_meta(library / relative["deviated"]).owner, dtype=np.int64)
    seats = agent_seats(owner, deviation.after + deviation.deviators)[deviation.after:]
    settings = ", ".join(f"{k}={v!r}" for k, v in config.items()) or "defaults"
    return FailureReport(
        id=report_id,
        mechanism=mechanism.name,
        mechanism_version=mechanism.version,
        config=config,
        population=target.population,
        information=target.information,
        enforcement=target.enforcement,
        values=target.values,
        affected_rule=f"{mechanism.name} v{mechanism.version}: {mechanism.summary} ({settings}); "
                      f"attacked by {family.summary}",
        agents_involved=AgentsInvolved(deviators=deviation.deviators, after=deviation.after,
                                       seats=[int(s) for s in seats],
                                       identities=[int(i) for i in np.flatnonzero(np.isin(owner, seats))],
                                       agent=agent, population=population),
        strategy=Strategy(family=family.name, params=dict(deviation.params), agent=agent,
                          summary=f"{family.summary}: {result.description}" if result.description else family.summary),
        gain=GainEstimate(mean=fresh.mean, ci95=(fresh.lo, fresh.hi), baseline=fresh.baseline,
                          markets=fresh.markets, rounds=fresh.rounds, seed=fresh.seed),
        frequency=fresh.frequency,
        severity=severity(fresh.mean, fresh.welfare),
        trace=Trace(baseline=relative["baseline"], deviated=relative["deviated"], seed=seed, markets=trace_markets,
                    rounds=rounds, recorded_gain=recorded),
        mitigation=family.mitigation,
        regression=Regression(
            command=regression_command(library, mechanism.name, config, rounds, threshold),
            threshold=threshold,
            rule=f"closed when the gain's upper 95% bound is <= {threshold!r} on an independent seed; "
                 f"still pays while its lower bound is > {threshold!r}"),
        search={**result.search, "search_gain": result.best.gain.as_dict(), "evaluations": result.evaluations,
                **({"best_response": found.as_dict()} if found else {})},
    )
