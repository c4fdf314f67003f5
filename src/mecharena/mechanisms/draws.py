"""Randomness inside a mechanism: uniforms hashed from the seats' priorities.

A kernel or a step may draw only from its inputs (the same inputs give the same outcome, whatever
the batch split). Priorities are seeded uniforms keyed by market, round and seat, so hashing their
bits gives as many further independent draws as a mechanism needs (a buyer arriving, a rating, an
audit) with a counter-based generator: SplitMix64's finalizer (Steele, Lea and Flood 2014, "Fast
splittable pseudorandom number generators", OOPSLA). ``uniforms`` is the batched form, ``uniform``
the scalar one for references; they agree bit for bit.

>>> keys = seat_keys(np.array([[0.25, 0.5]]))
>>> float(uniforms(keys, 3)[0, 1]) == uniform(seat_key(0.5), 3)
True
"""

import struct
from typing import Any

import numpy as np

from mecharena.core.types import FloatArray

_MASK = (1 << 64) - 1
_GOLDEN, _MUL1, _MUL2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix(z: Any) -> Any:
    """The finalizer on uint64 arrays (wrapping arithmetic)."""
    z = z + np.uint64(_GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MUL1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MUL2)
    return z ^ (z >> np.uint64(31))


def _mix_int(z: int) -> int:
    z = (z + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * _MUL1) & _MASK
    z = ((z ^ (z >> 27)) * _MUL2) & _MASK
    return z ^ (z >> 31)


def seat_keys(priority: Any) -> Any:
    """(B, N) uint64 keys: the bits of each priority."""
    return np.ascontiguousarray(priority, dtype=np.float64).view(np.uint64)


def seat_key(priority: float) -> int:
    """One seat's key (scalar references)."""
    return struct.unpack("<Q", struct.pack("<d", float(priority)))[0]


def uniforms(keys: Any, stream: int) -> FloatArray:
    """U[0, 1) draws of the shape of ``keys``, independent across streams (0, 1, 2, ...)."""
    salt = np.uint64(_mix_int(stream + 1))
    return (_mix(keys ^ salt) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def uniform(key: int, stream: int) -> float:
    """The scalar :func:`uniforms`."""
    return (_mix_int(key ^ _mix_int(stream + 1)) >> 11) * 2.0**-53
