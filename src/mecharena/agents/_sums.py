"""NumPy's summation order, compiled: kernels that add up as ``ndarray.sum`` does, so compiled agents keep
their NumPy formulations' results bit for bit."""

import numba
import numpy as np

from mecharena.core.types import FloatArray


@numba.njit(cache=True, nogil=True)
def block_sum(a: FloatArray, start: int, n: int) -> float:
    """NumPy's sum of ``a[start:start + n]`` for n <= 128: sequential below 8, else eight accumulators."""
    if n < 8:
        total = 0.0
        for i in range(n):
            total += a[start + i]
        return total
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = start + 8
    end = start + n - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        total += a[i]
        i += 1
    return total


@numba.njit(cache=True, nogil=True)
def pairwise_sum(a: FloatArray, start: int, n: int) -> float:
    """NumPy's pairwise summation of ``a[start:start + n]`` (blocks of at most 128, halved in multiples of
    8), so the compiled update adds up exactly as ``ndarray.sum`` does. Iterative: a cached compiled
    function must not call itself."""
    if n <= 128:
        return block_sum(a, start, n)
    starts = np.empty(64, np.int64)  # a stack of tasks: a span to sum (size > 0) or a join (size 0)
    sizes = np.empty(64, np.int64)
    partial = np.empty(64)  # a stack of finished sums
    starts[0], sizes[0] = start, n
    tasks, done = 1, 0
    while tasks:
        tasks -= 1
        first, size = starts[tasks], sizes[tasks]
        if size == 0:  # join: left + right, in NumPy's order
            done -= 1
            partial[done - 1] = partial[done - 1] + partial[done]
        elif size <= 128:
            partial[done] = block_sum(a, first, size)
            done += 1
        else:
            half = size // 2
            half -= half % 8
            starts[tasks], sizes[tasks] = 0, 0
            starts[tasks + 1], sizes[tasks + 1] = first + half, size - half
            starts[tasks + 2], sizes[tasks + 2] = first, half
            tasks += 3
    return partial[0]
