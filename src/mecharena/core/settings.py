"""Operation settings: how hard ``fuzz``, ``repair`` and ``ring`` search, every default, bound and description once.

The Python functions (:func:`mecharena.fuzz.search.fuzz`, :func:`mecharena.fuzz.repair.repair`)
take their defaults from these models and validate their arguments with them; the CLI's options
take their help and defaults from them and validate the same way; the MCP ``fuzz`` tool publishes
the same bounds in its argument schema (the field types below). A bound changes here alone, and
``tests/fuzz/test_settings.py`` checks that the CLI, the MCP tool and the Python API agree.

Two defaults differ on purpose, each named here: the MCP tool's budget (``MCP_BUDGET``, about a
second for a five-bidder auction) and the CLI's discovery-engine sample (``CLI_SAMPLES``, where the
Python default is one search evaluation's market-rounds).

>>> FuzzSettings.build(budget=0)
Traceback (most recent call last):
...
mecharena.core.errors.ConfigError: budget must be a finite int in [1, 2000], got 0
"""

from typing import Annotated, Literal

from pydantic import Field

from mecharena.core.config import StrictModel

MCP_BUDGET = 24
CLI_SAMPLES = 20_000
MAX_SAMPLES = 2_000_000  # market-rounds the discovery engine clears per candidate bid: memory bound

Deviators = Annotated[int, Field(ge=1, le=64, description="K agents deviating together (K > 1: a coalition)")]
Budget = Annotated[int, Field(ge=1, le=2000, description="evaluations in the search")]
Sampler = Literal["tpe", "cmaes"]
Restarts = Annotated[int, Field(ge=1, le=16, description="independent studies per family")]
Markets = Annotated[int, Field(ge=2, le=100_000, description="markets per search evaluation")]
Rounds = Annotated[int, Field(ge=1, le=1000, description="rounds per evaluation")]
EvalMarkets = Annotated[int, Field(ge=2, le=1_000_000, description=(
    "markets of the fresh evaluation of the best deviation"))]
Threshold = Annotated[float, Field(ge=0, le=1000, description=(
    "gain below which a deviation does not count as an exploit"))]
Samples = Annotated[int, Field(ge=2, le=MAX_SAMPLES, description=(
    "market-rounds the discovery engine fits its best response on"))]


class FuzzSettings(StrictModel):
    """The search of :func:`mecharena.fuzz.search.fuzz` (see its docstring for what each does)."""

    families: list[str] | None = Field(None, description=(
        "deviation families to search (default: every family that applies, opt-in ones aside)"))
    deviators: Deviators = 1
    budget: Budget = 60
    sampler: Sampler = Field("tpe", description="Optuna sampler: tpe or cmaes")
    restarts: Restarts = 1
    markets: Markets = 400
    rounds: Rounds = 10
    eval_markets: EvalMarkets = 2000
    threshold: Threshold = 1e-3
    samples: Samples | None = Field(None, description=(
        "market-rounds the discovery engine fits its best response on (None: one search evaluation's)"))


class RepairSettings(StrictModel):
    """The search of :func:`mecharena.fuzz.repair.repair`."""

    families: list[str] | None = Field(None, description="deviation families the inner fuzzing searches")
    deviators: Deviators = 1
    budget: int = Field(30, ge=1, le=2000, description="designs tried")
    inner_budget: Budget = Field(16, description="fuzz evaluations per design")
    welfare_floor: float = Field(0.9, ge=0, le=1, description="least welfare, as a share of the original's")
    revenue_floor: float = Field(0.9, ge=0, le=1, description="least revenue, as a share of the original's")
    markets: Markets = Field(300, description="markets per evaluation (fuzzing steps and welfare/revenue)")
    rounds: Rounds = 8
    eval_markets: EvalMarkets = 1000


RingMembers = Annotated[int, Field(ge=2, le=64, description="K, the ring's members")]
Phases = Annotated[int, Field(ge=1, le=50, description="ring-then-defection phases of the search")]
Generations = Annotated[int, Field(ge=1, le=10_000, description="CMA-ES generations of each ring search")]
DefectionGenerations = Annotated[int, Field(ge=1, le=10_000, description=(
    "CMA-ES generations of each defection search and of the certificate"))]
RingFeatures = Annotated[list[str], Field(description=(
    "policy features the ring's maps may weigh (empty: all; defections always see all)"))]
#: The MCP ``ring`` tool's defaults, smaller than the CLI's so that a call stays within its work limit
#: (about 2 million market-rounds for first price: seconds of one core).
MCP_RING = {"phases": 2, "generations": 6, "defection_generations": 6, "markets": 100, "eval_markets": 1000,
            "rounds": 6}


class RingSettings(StrictModel):
    """The search of :func:`mecharena.fuzz.ring_policy.ring_policy_search`."""

    deviators: RingMembers = 2
    phases: Phases = 4
    generations: Generations = 30
    defection_generations: DefectionGenerations = 15
    population: int = Field(14, ge=4, le=1000, description="CMA-ES candidates per generation")
    markets: Markets = Field(1000, description="markets of every search evaluation")
    eval_markets: EvalMarkets = Field(4000, description="markets of the fresh scores of the ring and its certificate")
    penalty: float = Field(4.0, ge=1, le=1000, description=(
        "a ring's score loses this times what its best known defection brings the defector (>= 1: a defection "
        "costs the ring at least what it brings)"))
    credible: bool = Field(True, description=(
        "search the punishers' side too: a ring's threat must be one its members carry out (a member who gains by "
        "not punishing costs the ring as a defector does)"))
    features: RingFeatures = Field(default_factory=list)


def description(model: type[StrictModel], name: str) -> str:
    """The field's description, for a CLI option's help."""
    return model.model_fields[name].description or name
