"""Private value distributions, sampled by inverse CDF from market-keyed uniforms.

All draws for market b depend only on (seed, stream, b), never on the batch size
(see :func:`mecharena.core.seeding.market_uniforms`).
"""

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import Key, market_uniforms
from mecharena.core.types import FloatArray


class ValueDistribution(StrictModel):
    """i.i.d. private values on [low, high].

    * ``uniform``: F(x) = t with t = (x - low) / (high - low);
    * ``power``: F(x) = t^shape (shape > 1 favours high values);
    * ``exponential``: exponential with rate ``shape`` truncated to [low, high].

    >>> d = ValueDistribution(kind="power", shape=2.0)
    >>> float(d.ppf(np.array(0.25)))
    0.5
    """

    kind: Literal["uniform", "power", "exponential"] = "uniform"
    low: float = Field(0.0, ge=0, description="lowest value")
    high: float = Field(1.0, gt=0, description="highest value")
    shape: float = Field(1.0, gt=0, le=1000, description="power exponent or exponential rate")

    @model_validator(mode="after")
    def _ordered(self) -> "ValueDistribution":
        if self.high <= self.low:
            raise ValueError(f"high must be > low ({self.low}), got {self.high}")
        return self

    @property
    def width(self) -> float:
        return self.high - self.low

    def cdf(self, x: FloatArray) -> FloatArray:
        t = np.clip((np.asarray(x, dtype=float) - self.low) / self.width, 0.0, 1.0)
        if self.kind == "uniform":
            return t
        if self.kind == "power":
            return t**self.shape
        lam = self.shape * self.width
        return -np.expm1(-lam * t) / -np.expm1(-lam)

    def ppf(self, u: FloatArray) -> FloatArray:
        u = np.asarray(u, dtype=float)
        if self.kind == "uniform":
            t = u
        elif self.kind == "power":
            t = u ** (1.0 / self.shape)
        else:
            lam = self.shape * self.width
            t = -np.log1p(u * np.expm1(-lam)) / lam
        return self.low + self.width * t

    def sample(self, seed: int, key: Key, start: int, shape: tuple[int, ...]) -> FloatArray:
        """Values for markets ``start .. start + shape[0] - 1``. With a trailing unit axis K
        (multi-unit demand) each agent's K marginal values are sorted, highest first."""
        values = self.ppf(market_uniforms(seed, key, start, shape))
        return -np.sort(-values, axis=2) if len(shape) == 3 else values


def parse_distribution(spec: str) -> ValueDistribution:
    """``uniform``, ``power:shape=2``, ``exponential:shape=3,high=2`` -> :class:`ValueDistribution`.

    Raises:
        ConfigError: unknown kind or field, or a field out of range.
    """
    kind, _, rest = spec.partition(":")
    fields: dict[str, object] = {"kind": kind.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"value distribution field must look like name=value, got {item!r} in {spec!r}")
        fields[name.strip()] = value.strip()
    return ValueDistribution.build(**fields)
