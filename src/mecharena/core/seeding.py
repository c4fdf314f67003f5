"""Explicit, spawnable randomness.

Every random draw comes from a ``numpy.random.Generator`` built from a seed and a *key*
naming the stream (``("values", round)``, ``("agent", 3)``). Draws for market ``b`` are the
same whatever the batch size or the worker that computes them: :func:`market_uniforms`
advances a PCG64 stream to the first row of the requested block, so a block of markets
``[start, start + B)`` equals rows ``start:start + B`` of one large draw.

>>> a = market_uniforms(7, ("values", 0), start=0, shape=(6, 3))
>>> b = market_uniforms(7, ("values", 0), start=4, shape=(2, 3))
>>> bool((a[4:] == b).all())
True
"""

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from mecharena.core.types import FloatArray

Key = tuple[str | int, ...]


def _spawn_key(key: Key) -> tuple[int, ...]:
    # Strings are hashed with a fixed function (not hash(), which is salted per process).
    return tuple(zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key)


def seed_sequence(seed: int, key: Key = ()) -> np.random.SeedSequence:
    """The seed sequence of stream ``key`` under root ``seed``."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=_spawn_key(key))


def generator(seed: int, key: Key = ()) -> np.random.Generator:
    """An independent generator for stream ``key`` under root ``seed``."""
    return np.random.Generator(np.random.PCG64(seed_sequence(seed, key)))


class LazyGenerator:
    """:func:`generator` ``(seed, key)``, built when it is first drawn from.

    It stands in for that ``numpy.random.Generator``: every other attribute (``integers``, ``random``,
    ``bit_generator``, ...) is the generator's own, so a policy draws exactly what it would draw from the
    generator itself, while a stream that is never drawn from is never seeded (about 11 us saved each: a
    negotiation seat whose scripted policy does not draw).

    >>> rng = LazyGenerator(3, ("seat", 1))
    >>> bool(rng.integers(0, 100) == generator(3, ("seat", 1)).integers(0, 100))
    True
    >>> import copy
    >>> twin = copy.deepcopy(rng)  # a copy draws what the original draws next
    >>> bool(twin.random() == rng.random())
    True
    """

    __slots__ = ("seed", "key", "_generator")

    def __init__(self, seed: int, key: Key) -> None:
        self.seed, self.key = seed, key
        self._generator: np.random.Generator | None = None

    @property
    def generator(self) -> np.random.Generator:
        """The generator itself (built now if it was not yet)."""
        if self._generator is None:
            self._generator = generator(self.seed, self.key)
        return self._generator

    def __getattr__(self, name: str) -> Any:  # only for names the class itself lacks
        if name.startswith("_"):  # copy and pickle look up hooks on an instance not yet filled in
            raise AttributeError(name)
        return getattr(self.generator, name)


def market_uniforms(seed: int, key: Key, start: int, shape: tuple[int, ...]) -> FloatArray:
    """U[0, 1) draws for markets ``start .. start + shape[0] - 1`` of stream ``key``.

    Args:
        seed: root seed of the run.
        key: names the stream (e.g. ``("values", round)``).
        start: index of the first market of this block.
        shape: ``(B, ...)``; every market uses ``prod(shape[1:])`` consecutive draws.

    Returns:
        Array of ``shape``, row ``b`` identical to row ``start + b`` of a draw from 0.
    """
    bit_generator = np.random.PCG64(seed_sequence(seed, key))
    per_market = math.prod(shape[1:])
    bit_generator.advance(start * per_market)  # one 64-bit output per double
    return np.random.Generator(bit_generator).random(shape)


@dataclass(frozen=True, slots=True)
class Draws:
    """Market-keyed uniform draws for one block of markets: independent of batch splits.

    >>> whole, tail = Draws(3, ("init",), 0, 4), Draws(3, ("init",), 2, 2)
    >>> bool((whole.uniform("x", 2)[2:] == tail.uniform("x", 2)).all())
    True
    """

    seed: int
    key: Key
    start: int
    markets: int

    def uniform(self, tag: str, *tail: int) -> FloatArray:
        """U[0, 1) draws of shape (B, *tail) for stream ``tag``."""
        return market_uniforms(self.seed, (*self.key, tag), self.start, (self.markets, *tail))


@numba.njit(cache=True, inline="always")
def hash_uniform(key: np.uint64, a: int, b: int, c: int) -> float:
    """A uniform in [0, 1) from a splitmix64 hash of (key, a, b, c), for compiled kernels.

    Counter-based: the draw for (a, b, c) does not depend on which other draws were made, so a
    kernel's episodes are the same however they are batched, with no generator state to carry.
    """
    x = key ^ (np.uint64(a) * np.uint64(0x9E3779B97F4A7C15)) ^ (np.uint64(b) * np.uint64(0xC2B2AE3D27D4EB4F)) \
        ^ (np.uint64(c) * np.uint64(0x165667B19E3779F9))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return float(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def lattice_uniforms(seed: int, key: Key, markets: int, dims: int) -> FloatArray:
    """A randomly shifted rank-1 lattice: (markets, dims) points in [0, 1)^dims, each marginal uniform.

    Quasi-Monte Carlo for integrals over a few dimensions (the values and priorities of one market):
    row i is ``frac(i * z / markets + shift)`` with the Korobov generator ``z = (1, a, a^2, ...) mod
    markets`` (``a`` near ``markets`` times the golden ratio) and a uniform shift from stream ``key``, so
    every estimate stays unbiased while its error falls nearly as 1/markets for smooth integrands
    (Sloan and Joe, *Lattice Methods for Multiple Integration*, 1994).

    >>> points = lattice_uniforms(1, ("x",), 1009, 3)
    >>> points.shape, bool(abs(points.mean(axis=0) - 0.5).max() < 1e-3)
    ((1009, 3), True)
    """
    a = int(markets * 0.6180339887498949) | 1
    z = np.array([pow(a, j, markets) for j in range(dims)], dtype=np.int64)
    shift = np.random.Generator(np.random.PCG64(seed_sequence(seed, key))).random(dims)
    return (np.arange(markets, dtype=np.int64)[:, None] * z[None, :] % markets / markets + shift) % 1.0
