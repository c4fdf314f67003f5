"""Private value distributions, sampled by inverse CDF from market-keyed uniforms.

All draws for market b depend only on (seed, stream, b), never on the batch size
(see :func:`mecharena.core.seeding.market_uniforms`).

An empirical distribution comes from a user's data (``empirical:path=values.csv``): the sample's
quantiles, with the CDF linear between them, so it has a density (no ties from atoms) and its
support is the data's range. The quantiles themselves are the distribution's fields, so a ledger
or a cache key records the data, not a path.
"""

import csv
import math
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import Key, market_uniforms
from mecharena.core.types import FloatArray, IntArray

MAX_POINTS = 4097  # quantiles an empirical distribution keeps: a larger sample is summarised by its quantiles


class ValueDistribution(StrictModel):
    """i.i.d. private values on [low, high].

    * ``uniform``: F(x) = t with t = (x - low) / (high - low);
    * ``power``: F(x) = t^shape (shape > 1 favours high values);
    * ``exponential``: exponential with rate ``shape`` truncated to [low, high];
    * ``empirical``: F linear between the sorted ``points`` (evenly spaced quantiles of a sample),
      low and high their ends.

    The distribution is of each agent's *signal*, what it knows when it bids. With ``common`` = c > 0
    values are interdependent: agent i's value is ``(1 - c) s_i + c mean_j s_j`` over the market's
    agents (false names aside), so the highest signal tends to overestimate its value (the winner's
    curse); c = 1 is a pure common value, the mean signal (a wallet game, Klemperer 1998). See
    :meth:`realize` and, for equilibrium bids, :func:`mecharena.agents.bne.common_value_bids`. With
    ``persistent`` an agent's value is drawn once per episode and kept every round (a type, as in
    reputation and repeated games with fixed valuations); by default it is drawn afresh each round.

    >>> d = ValueDistribution(kind="power", shape=2.0)
    >>> float(d.ppf(np.array(0.25)))
    0.5
    >>> e = ValueDistribution(kind="empirical", points=(0.0, 0.2, 1.0))
    >>> float(e.ppf(np.array(0.25))), float(e.cdf(np.array(0.6))), e.high
    (0.1, 0.75, 1.0)
    """

    kind: Literal["uniform", "power", "exponential", "empirical"] = "uniform"
    low: float = Field(0.0, ge=0, description="lowest value")
    high: float = Field(1.0, gt=0, description="highest value")
    shape: float = Field(1.0, gt=0, le=1000, description="power exponent or exponential rate")
    points: tuple[float, ...] | None = Field(None, min_length=2, max_length=MAX_POINTS, description=(
        "empirical: sorted quantiles of the sample, evenly spaced in probability"))
    common: float = Field(0.0, ge=0, le=1, description=(
        "share of each value common to its market: value = (1 - common) x own signal + common x the market's "
        "mean signal (0: private values)"))
    persistent: bool = Field(False, description=(
        "each agent keeps the value drawn for round 0 (its type) in every round of an episode; false: drawn afresh "
        "each round"))

    @model_validator(mode="before")
    @classmethod
    def _support(cls, data: object) -> object:
        """An empirical distribution's low and high are its points' ends (given or not)."""
        if isinstance(data, dict) and data.get("kind") == "empirical" and isinstance(data.get("points"), list | tuple):
            points = data["points"]
            if points and all(isinstance(p, int | float) and math.isfinite(p) for p in points):
                for name, end in (("low", min(points)), ("high", max(points))):
                    if name in data and data[name] != end:
                        raise ValueError(f"{name} of an empirical distribution is its data's {name}est value "
                                         f"({end}), got {data[name]}")
                data = {**data, "low": min(points), "high": max(points)}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> "ValueDistribution":
        if (self.kind == "empirical") != (self.points is not None):
            raise ValueError("points are given exactly when kind is 'empirical'")
        if self.points is not None and any(b < a for a, b in zip(self.points, self.points[1:], strict=False)):
            raise ValueError("points must be sorted, lowest first")
        if self.high <= self.low:
            raise ValueError(f"high must be > low ({self.low}), got {self.high}")
        return self

    @property
    def width(self) -> float:
        return self.high - self.low

    def cdf(self, x: FloatArray) -> FloatArray:
        if self.points is not None:
            return np.interp(np.asarray(x, dtype=float), self.points, np.linspace(0.0, 1.0, len(self.points)))
        t = np.clip((np.asarray(x, dtype=float) - self.low) / self.width, 0.0, 1.0)
        if self.kind == "uniform":
            return t
        if self.kind == "power":
            return t**self.shape
        lam = self.shape * self.width
        return -np.expm1(-lam * t) / -np.expm1(-lam)

    def ppf(self, u: FloatArray) -> FloatArray:
        u = np.asarray(u, dtype=float)
        if self.points is not None:
            return np.interp(u, np.linspace(0.0, 1.0, len(self.points)), self.points)
        if self.kind == "uniform":
            t = u
        elif self.kind == "power":
            t = u ** (1.0 / self.shape)
        else:
            lam = self.shape * self.width
            t = -np.log1p(u * np.expm1(-lam)) / lam
        return self.low + self.width * t

    def realize(self, signals: FloatArray, owner: IntArray) -> FloatArray:
        """(B, N) values from (B, N) signals (see the class docstring); ``owner`` (N,) maps each seat to its
        agent's own seat, whose signal its false names carry. Private values (common = 0) are the signals.

        >>> d = ValueDistribution(common=0.5)
        >>> d.realize(np.array([[0.2, 0.2, 0.8]]), np.array([0, 0, 2])).tolist()  # seat 1: seat 0's false name
        [[0.35, 0.35, 0.65]]
        """
        if self.common == 0:
            return signals
        own = owner == np.arange(owner.size)
        mean = signals[:, own].mean(axis=1, keepdims=True)
        return (1 - self.common) * signals + self.common * mean

    def sample(self, seed: int, key: Key, start: int, shape: tuple[int, ...], marginal: bool = True) -> FloatArray:
        """Values for markets ``start .. start + shape[0] - 1``. With a trailing axis K and ``marginal``
        (multi-unit demand) each agent's K marginal values are sorted, highest first; without (utilities for
        each member of the other side of a matching market) each is its own draw."""
        uniforms = market_uniforms(seed, key, start, shape)
        # U[0, 1) values are the uniforms themselves: 0 + 1 x u is u, bit for bit, for every u in [0, 1)
        standard = self.kind == "uniform" and self.points is None and self.low == 0.0 and self.width == 1.0
        values = uniforms if standard else self.ppf(uniforms)
        return -np.sort(-values, axis=2) if len(shape) == 3 and marginal else values

    @property
    def prior_text(self) -> str:
        """The prior as a group's ``values=`` field of a population spec (``uniform``, ``power:shape=2.0;high=2.0``):
        kind, low, high and shape where they differ from the defaults.

        >>> ValueDistribution(kind="exponential", shape=3.0, high=2.0).prior_text
        'exponential:high=2.0;shape=3.0'
        """
        fields = self.model_dump(include={"low", "high", "shape"}, exclude_defaults=True)
        return f"{self.kind}:" + ";".join(f"{k}={v}" for k, v in sorted(fields.items())) if fields else self.kind


GROUP_PRIOR_FIELDS = ("kind", "low", "high", "shape")  # what a population group's own prior may set


def parse_prior(text: str) -> ValueDistribution:
    """A population group's own value prior, ``KIND[:name=value;...]`` with fields from GROUP_PRIOR_FIELDS
    (``power:shape=2``, ``uniform:high=2``): a parametric distribution of the group's values. Whether
    values are common or persistent is the market's, and an empirical prior, which reads a file, is the
    market's alone (populations pass through network shells that never read server files).

    Raises:
        ConfigError: naming the field and what is allowed.
    """
    kind, _, rest = text.partition(":")
    usage = (f"a group's values take uniform, power or exponential with fields {', '.join(GROUP_PRIOR_FIELDS[1:])} "
             f"(KIND:name=value;...), got {text!r}; common, persistent and empirical data are the market's")
    if kind.strip() not in ("uniform", "power", "exponential"):
        raise ConfigError(usage)
    fields = parse_distribution(f"{kind}:{rest.replace(';', ',')}").model_dump(exclude_defaults=True)
    if set(fields) - set(GROUP_PRIOR_FIELDS):
        raise ConfigError(usage)
    return ValueDistribution.build(**fields)


def sample_priors(priors: ValueDistribution | tuple[ValueDistribution, ...], seed: int, key: Key, start: int,
                  shape: tuple[int, ...], marginal: bool = True) -> FloatArray:
    """:meth:`ValueDistribution.sample` with agent j (column j) drawn from ``priors[j]`` (or every agent from
    one prior), all from the same uniforms: an agent's values depend only on its own prior and column, so
    populations that differ in one group's prior share every other agent's values (common random numbers)."""
    if isinstance(priors, ValueDistribution):
        return priors.sample(seed, key, start, shape, marginal)
    uniforms = market_uniforms(seed, key, start, shape)
    values = np.empty(shape)
    for prior in {id(p): p for p in priors}.values():  # by identity: a group's seats share one object
        agents = [j for j, p in enumerate(priors) if p is prior]
        values[:, agents] = prior.ppf(uniforms[:, agents])
    return -np.sort(-values, axis=2) if len(shape) == 3 and marginal else values


def parse_distribution(spec: str) -> ValueDistribution:
    """``uniform``, ``power:shape=2``, ``exponential:shape=3,high=2``, ``empirical:path=values.csv``
    (optionally ``column=NAME``) -> :class:`ValueDistribution`.

    Raises:
        ConfigError: unknown kind or field, a field out of range, or a values file that cannot be read
            (its path, line and what is wrong).
    """
    kind, _, rest = spec.partition(":")
    fields: dict[str, object] = {"kind": kind.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"value distribution field must look like name=value, got {item!r} in {spec!r}")
        fields[name.strip()] = value.strip()
    if fields["kind"] == "empirical":
        if "path" not in fields:
            raise ConfigError(f"an empirical value distribution needs path=FILE (a CSV of values), got {spec!r}")
        extra = sorted(set(fields) - {"kind", "path", "column", "common", "persistent"})
        if extra:
            raise ConfigError(f"an empirical value distribution takes path, column, common and persistent, got "
                              f"{', '.join(extra)}")
        found = empirical(read_values(Path(str(fields["path"])), fields.get("column")), fields.get("common", 0.0))
        return found.model_copy(update={"persistent": ValueDistribution.build(
            persistent=fields.get("persistent", False)).persistent})
    return ValueDistribution.build(**fields)


def reads_file(spec: str) -> bool:
    """Whether the distribution ``spec`` loads a file (shells serving a network refuse those)."""
    return spec.partition(":")[0].strip() == "empirical"


def empirical(sample: FloatArray, common: float | str = 0.0) -> ValueDistribution:
    """The empirical distribution of ``sample``: all of it sorted, or MAX_POINTS evenly spaced quantiles
    (``common``: see :class:`ValueDistribution`).

    Raises:
        ConfigError: fewer than two distinct values, or a value that is negative or not finite.
    """
    sample = np.sort(np.asarray(sample, dtype=float).ravel())
    if not np.isfinite(sample).all() or (sample < 0).any():
        bad = sample[~np.isfinite(sample) | (sample < 0)][0]
        raise ConfigError(f"values must be finite and >= 0, got {bad}")
    if np.unique(sample).size < 2:
        raise ConfigError(f"an empirical value distribution needs at least two distinct values, got {sample.tolist()}")
    if sample.size > MAX_POINTS:
        sample = np.quantile(sample, np.linspace(0.0, 1.0, MAX_POINTS))
    return ValueDistribution.build(kind="empirical", points=tuple(sample.tolist()), common=common)


def read_values(path: Path, column: str | None = None) -> FloatArray:
    """The numbers of a CSV's first column (or the column named ``column``); a first row that is not
    a number is the header.

    Raises:
        ConfigError: a missing or unreadable file, an unknown column, or a cell that is not a number.
    """
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"values file {path}: {exc.strerror if isinstance(exc, OSError) else 'not text'}") from None
    if not rows:
        raise ConfigError(f"values file {path} is empty")
    header = None if _number(rows[0][1][0]) is not None else [c.strip() for c in rows[0][1]]
    index = 0
    if column is not None:
        if header is None or column not in header:
            raise ConfigError(f"values file {path} has no column {column!r}; its header: {header or 'none'}")
        index = header.index(column)
    values = []
    for line, row in rows[1:] if header else rows:
        number = _number(row[index]) if index < len(row) else None
        if number is None:
            raise ConfigError(f"values file {path} line {line}: {row[index] if index < len(row) else ''!r} "
                              f"is not a number")
        values.append(number)
    return np.array(values)


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None
