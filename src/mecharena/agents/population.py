"""Populations: which agent type plays each seat of a market.

A spec is a comma-separated list of ``TYPE[(name=value,...)]:COUNT``, e.g. ``truthful:5``,
``bne:3,truthful:2`` or ``cartel:3,dropout(outside=0.1):4,sybil(m=2):1``. Groups take seats in
the order given (so in two-sided markets the first seats are the buyers). An agent with m
identities (a sybil) takes m consecutive seats; the first is its own, the others are owned by it.

Any group may draw its values from its own prior, ``values=KIND[:name=value;...]`` among its
parameters (:func:`mecharena.agents.values.parse_prior`): ``bne(values=uniform:high=2):1,bne:1`` is a
strong and a weak bidder (asymmetric bidders). Its members see that prior as theirs
(``MarketContext.values``) and every seat's prior as ``MarketContext.priors``.

A mixture ``dirichlet(n=10,alpha=1):TYPE[(...)],TYPE[(...)],...`` draws the shares of the types
from a symmetric Dirichlet(alpha) for each episode (from the episode's seed) and rounds them to n
agents by largest remainder; types that get no agent are left out.
"""

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from mecharena.agents.base import AgentType
from mecharena.agents.values import GROUP_PRIOR_FIELDS, ValueDistribution, parse_prior
from mecharena.core.config import StrictModel, parse_assignments
from mecharena.core.errors import ConfigError
from mecharena.core.types import IntArray

MAX_AGENTS = 10_000
_GROUP = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?:\((.*)\))?\s*:\s*(\S+)\s*$")
_MIXTURE = re.compile(r"^\s*dirichlet\s*\(([^)]*)\)\s*:(.*)$")
MIXTURE_USAGE = "dirichlet(n=COUNT,alpha=A):TYPE[(name=value,...)],TYPE..."


class MixtureParams(StrictModel):
    n: int = Field(10, ge=1, le=MAX_AGENTS, description="agents in the market")
    alpha: float = Field(1.0, gt=0, le=1000, description="concentration of the symmetric Dirichlet over type shares")


@dataclass(frozen=True, slots=True)
class Group:
    """``count`` agents of one type with the same parameters, on seats ``start .. stop - 1``."""

    agent: AgentType
    params: StrictModel
    count: int
    start: int
    identities: int
    values: ValueDistribution | None = None  # the group's own prior (kind, low, high, shape); None: the market's

    @property
    def stop(self) -> int:
        return self.start + self.count * self.identities

    @property
    def seats(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def label(self) -> str:
        fields = self.params.model_dump(exclude_defaults=True)
        if self.values is not None:
            fields["values"] = self.values.prior_text
        args = ",".join(f"{k}={v}" for k, v in fields.items())
        return f"{self.agent.name}({args})" if args else self.agent.name


@dataclass(frozen=True, slots=True)
class Population:
    """Agent groups and the seats they hold."""

    groups: tuple[Group, ...]

    @property
    def size(self) -> int:
        """N, the number of seats."""
        return self.groups[-1].stop

    @property
    def spec(self) -> str:
        return ",".join(f"{g.label}:{g.count}" for g in self.groups)

    @property
    def versions(self) -> dict[str, int]:
        return {g.agent.name: g.agent.version for g in self.groups}

    @property
    def owner(self) -> IntArray:
        """(N,) the seat of the agent that owns each seat (itself, except false-name identities)."""
        owner = np.arange(self.size)
        for g in self.groups:
            for j in range(g.count):
                first = g.start + j * g.identities
                owner[first: first + g.identities] = first
        return owner

    def priors(self, market: ValueDistribution) -> tuple[ValueDistribution, tuple[ValueDistribution, ...] | None]:
        """The market's prior and each seat's (N,): a group's own kind, low, high and shape with the
        ``market``'s common share and persistence. Seats with equal priors share one object; where all
        seats share one, it is the market's and the seats' are None (a symmetric market)."""
        shared = {market: market}
        seats: list[ValueDistribution] = []
        for g in self.groups:
            own = market if g.values is None else ValueDistribution.build(
                **{**market.model_dump(exclude={"points"}), **g.values.model_dump(include=set(GROUP_PRIOR_FIELDS))})
            seats += [shared.setdefault(own, own)] * (g.stop - g.start)
        return (seats[0], None) if all(p is seats[0] for p in seats) else (market, tuple(seats))


def with_prior(agent_spec: str, prior: ValueDistribution | None) -> str:
    """``agent_spec`` (``TYPE[(name=value,...)]``) drawing its values from ``prior`` (None: unchanged).

    >>> with_prior("shading(scale=0.8)", ValueDistribution(high=2.0))
    'shading(scale=0.8,values=uniform:high=2.0)'
    """
    if prior is None:
        return agent_spec
    name, _, args = agent_spec.partition("(")
    args = args.strip()[:-1].strip()
    return f"{name.strip()}({args + ',' if args else ''}values={prior.prior_text})"


def _split_groups(spec: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _fields(text: str | None, part: str, usage: str) -> dict[str, Any]:
    """``name=value,...`` with JSON values where they parse (numbers, booleans), else strings."""
    return parse_assignments((text or "").split(","),
                             lambda item: f"{usage} must look like name=value, got {item!r} in {part!r}")


def _parse_params(agent: AgentType, text: str | None, part: str) -> tuple[StrictModel, ValueDistribution | None]:
    """The agent's parameters and the group's own prior (its ``values=`` field; None if absent)."""
    fields = _fields(text, part, "agent parameter")
    try:
        prior = None if "values" not in fields else parse_prior(str(fields.pop("values")))
        return agent.params_model.build(**fields), prior
    except ConfigError as exc:
        raise ConfigError(f"{agent.name}: {exc}") from None


def sample_mixture(spec: str, registry, rng: np.random.Generator | None) -> str:
    """The fixed-count spec drawn from a ``dirichlet(...)`` mixture spec."""
    match = _MIXTURE.match(spec)
    if match is None:
        raise ConfigError(f"population mixture must look like {MIXTURE_USAGE}, got {spec!r}")
    params = MixtureParams.build(**_fields(match.group(1), spec, "mixture parameter"))
    types = [t.strip() for t in _split_groups(match.group(2))]
    if not types:
        raise ConfigError(f"population mixture must name at least one type: {MIXTURE_USAGE}, got {spec!r}")
    for t in types:  # validate every type before drawing
        name, _, rest = t.partition("(")
        _parse_params(registry.get(name.strip()), rest[:-1] if rest else None, t)
    if rng is None:
        raise ConfigError(f"population mixture {spec!r} needs a seed to draw its shares")
    shares = rng.dirichlet(np.full(len(types), params.alpha)) * params.n
    counts = np.floor(shares).astype(int)
    counts[np.argsort(-(shares - counts), kind="stable")[: params.n - counts.sum()]] += 1
    return ",".join(f"{t}:{c}" for t, c in zip(types, counts, strict=True) if c > 0)


def components(spec: str) -> tuple[str, ...]:
    """The fixed-count specs a population spec can stand for, for checking them against a mechanism: the
    spec itself, or for a ``dirichlet(n=COUNT,...)`` mixture each of its types alone in ``COUNT`` seats.

    Raises:
        ConfigError: malformed spec or mixture parameters.
    """
    match = _MIXTURE.match(spec)
    if match is None:
        return (spec,)
    params = MixtureParams.build(**_fields(match.group(1), spec, "mixture parameter"))
    return tuple(f"{t.strip()}:{params.n}" for t in _split_groups(match.group(2)))


def parse_population(spec: str, registry, rng: np.random.Generator | None = None) -> Population:
    """Parse ``TYPE[(name=value,...)]:COUNT,...`` (or a ``dirichlet(...)`` mixture, drawn with
    ``rng``) against the agent ``registry``.

    Raises:
        ConfigError: malformed spec, bad parameters, count out of range, or a mixture without rng.
        UnknownIdError: unknown agent type.
    """
    if _MIXTURE.match(spec):
        spec = sample_mixture(spec, registry, rng)
    groups: list[Group] = []
    seat = 0
    for part in _split_groups(spec):
        match = _GROUP.match(part)
        if not match or not match.group(3).isdigit():
            raise ConfigError(
                f"population must look like TYPE[(name=value,...)]:COUNT[,...], got {part.strip()!r} in {spec!r}"
            )
        name, params_text, count_text = match.groups()
        count = int(count_text)
        if not 1 <= count <= MAX_AGENTS:
            raise ConfigError(f"population count for {name!r} must be in [1, {MAX_AGENTS}], got {count}")
        agent = registry.get(name)
        params, prior = _parse_params(agent, params_text, part.strip())
        group = Group(agent, params, count, seat, agent.identities(params), prior)
        groups.append(group)
        seat = group.stop
    if not groups:
        raise ConfigError(f"population must name at least one TYPE:COUNT, got {spec!r}")
    if seat > MAX_AGENTS:
        raise ConfigError(f"population must have at most {MAX_AGENTS} seats, got {seat}")
    return Population(tuple(groups))
