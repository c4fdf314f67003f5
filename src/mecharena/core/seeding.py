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
