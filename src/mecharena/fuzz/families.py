"""Deviation families: parameterized strategies a deviator (or a coalition of deviators) may adopt.

Each family names an agent type (see ``mecharena agents``) and a box of its parameters to search;
a deviation replaces the first K agents of the population with that agent type. The families
cover DESIGN.md's adversaries: bid shading and misreporting (``curve``), reserve sniping, bid
rotation and knockout rings (``cartel``), sybil splitting, strategic exit and re-entry
(``dropout``), budget attacks on payment rules, free riding (``conditional`` with slope 0),
audit evasion, and time sniping in the continuous double auction.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

from mecharena.core.registry import Registry


@dataclass(frozen=True, slots=True)
class Param:
    """One searched parameter: a float or int range, or a bool."""

    name: str
    low: float = 0.0
    high: float = 1.0
    kind: Literal["float", "int", "bool"] = "float"


@dataclass(frozen=True, slots=True)
class Family:
    """A deviation family: an agent type and the parameter box searched."""

    name: str
    agent: str
    params: tuple[Param, ...]
    summary: str
    mitigation: str
    coalition: bool = False  # needs at least two deviators
    sides: Literal["any", "one", "two"] = "any"  # one-sided markets only, two-sided only, or both
    fixed: dict[str, Any] = field(default_factory=dict)
    starts: tuple[dict[str, Any], ...] = ()  # points every study evaluates first (e.g. mild shading)
    opt_in: bool = False  # searched only when named (e.g. LLM red-teams: each evaluation asks a model)
    engine: bool = False  # found by the discovery engine's search (mecharena.fuzz.discover), not by a sampler

    def agent_spec(self, params: dict[str, Any]) -> str:
        """``agent(name=value,...)`` for a population spec."""
        merged = {**self.fixed, **params}
        args = ",".join(f"{k}={_text(v)}" for k, v in merged.items())
        return f"{self.agent}({args})" if args else self.agent


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 12))
    return str(value)


CURVE = (Param("scale", 0.0, 1.5), Param("power", 0.5, 2.0), Param("offset", -0.3, 0.3))
# Mild, moderate and heavy linear shading: profitable regions of a curve family are often narrow.
CURVE_STARTS = tuple({"scale": s, "power": 1.0, "offset": 0.0} for s in (0.9, 0.75, 0.5))

FAMILIES: Registry[Family] = Registry("deviation family", {f.name: f for f in (
    Family("shading", "curve", CURVE, "bid-shading curve b = scale * v^power + offset",
           "a truthful payment rule (second price, VCG, uniform (k+1)-th price) leaves shading nothing to gain",
           sides="one", starts=CURVE_STARTS),
    Family("reserve_sniping", "reserve_snipe", (Param("margin", 0.0, 0.5),),
           "bid just above the announced reserve",
           "hide the reserve, or charge the second-highest bid so a lone bid pays the reserve anyway"),
    Family("rotation", "cartel", (Param("threshold", 0.0, 1.0), Param("temptation", 0.0, 1.0),
                                  Param("punish_rounds", 0, 10, "int"), Param("knockout", kind="bool")),
           "bid rotation or knockout ring of the K deviators",
           "hide winner identity and competing bids; audit with a collusion penalty", coalition=True),
    Family("sybil", "sybil", (Param("m", 2, 6, "int"), Param("explore", 0.0, 0.5)),
           "split into m false-name identities where that pays",
           "audit with a shill penalty, or make identities costly (entry fee)"),
    Family("exit", "dropout", (Param("outside", 0.0, 0.2), Param("memory", 0.05, 1.0),
                               Param("patience", 1, 20, "int")),
           "strategic exit and re-entry timing", "a withdrawal penalty, or a reserve that leaves bidders surplus"),
    Family("budget", "budget", (Param("budget", 0.1, 10.0), Param("factor", 1.0, 3.0)),
           "overbidding up to a budget where others set the price",
           "cap bids at values (first price), or make payments depend on own bids"),
    Family("misreport", "curve", CURVE, "misreported bids or asks in two-sided markets",
           "a dominant-strategy double auction (McAfee trade reduction)", sides="two", starts=CURVE_STARTS),
    Family("free_riding", "conditional", (Param("slope", 0.0, 1.0), Param("initial", 0.0, 1.0)),
           "contribute less than others (slope 0: pure free riding)",
           "a provision point with refund, or matching that makes contributing dominant"),
    Family("audit_evasion", "audit_evader", (Param("m", 2, 6, "int"), Param("explore", 0.0, 0.5)),
           "false-name bids when the expected fine is low", "raise the audit probability or the shill penalty"),
    Family("best_response", "best_response", (),
           "type-wise empirical best response: the best bid (or abstaining) for each value, any shape",
           "remove what the found bid function exploits (see its description and plot)", sides="any", engine=True),
    Family("coalition", "ring_table", (),
           "joint best response of the K deviators: role tables by rank of value within the ring (suppression, "
           "designated winners, joint shading), any shape",
           "hide winner identity and competing bids, audit with a collusion penalty, or a reserve that bounds "
           "what a ring can save", coalition=True, engine=True),
    Family("policy", "policy", (),
           "a policy from what the market reveals (last price, winners, bids, reserve) to a bid and entry, over "
           "repeated rounds, searched by CMA-ES",
           "remove what the found policy conditions on (see its weights): hide what it reads, or change the rule "
           "it exploits", sides="any", engine=True),
    Family("ranking", "rank_report", (),
           "the best preference report in a matching market: every reordering and truncation of the true ranking, "
           "for the first proposer and the first receiver",
           "proposing by deferred acceptance leaves proposers nothing to gain, but no stable rule stops receivers' "
           "truncation (Roth 1982): let the side whose incentives matter propose; in large markets with short "
           "lists receivers' gains vanish (Immorlica and Mahdian 2005)",
           sides="any", engine=True),
    Family("time_sniping", "sniper", (Param("lateness", 0.0, 1.0), Param("shading", 0.0, 1.0)),
           "late, shaded orders in the continuous double auction",
           "a call market (k-double auction) that clears all orders at once"),
)})
