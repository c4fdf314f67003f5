"""Engine throughput: second price, n = 10, B = 100,000 markets, on one set of inputs.

Three paths clear the same markets: the full engine path (:func:`mecharena.mechanisms.clear`:
config and shape validation, reserve, payments, the whole ``Outcome``), a bare NumPy kernel
(``np.partition`` + gather of the top two bids, nothing else), and the plain-Python scalar
reference (on the first ``reference_markets`` markets). Throughput is markets per second,
best of ``repeats``; peak memory is the tracemalloc peak of one engine call (NumPy reports its
allocations to tracemalloc).
"""

import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from mecharena.core.seeding import generator
from mecharena.mechanisms import clear, get


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (compilation, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(markets: int = 100_000, agents: int = 10, repeats: int = 7, reference_markets: int = 20_000,
        seed: int = 0) -> dict[str, object]:
    """Measure the three paths and return throughputs, ratios and peak memory."""
    reference_markets = min(reference_markets, markets)
    rng = generator(seed, ("bench", "engine"))
    values = rng.random((markets, agents))
    bids = values.copy()
    priority = rng.random((markets, agents))
    mechanism = get("second_price")
    config = mechanism.config({"reserve_price": 0.1})

    def engine() -> object:
        return clear(mechanism, config, values, bids, priority)

    def bare() -> object:
        top = np.partition(bids, agents - 2, axis=1)
        return top[:, -1], top[:, -2]

    def scalar() -> object:
        for b in range(reference_markets):
            mechanism.reference(config, values[b].tolist(), bids[b].tolist(), priority[b].tolist(), None)

    engine_s = _best_seconds(engine, repeats)
    bare_s = _best_seconds(bare, repeats)
    scalar_s = _best_seconds(scalar, 1)
    tracemalloc.start()
    engine()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    input_bytes = values.nbytes + bids.nbytes + priority.nbytes
    engine_rate, bare_rate, scalar_rate = markets / engine_s, markets / bare_s, reference_markets / scalar_s
    return {
        "benchmark": "engine",
        "mechanism": "second_price",
        "markets": markets,
        "agents": agents,
        "engine_markets_per_s": engine_rate,
        "bare_kernel_markets_per_s": bare_rate,
        "scalar_reference_markets_per_s": scalar_rate,
        "engine_over_bare": engine_rate / bare_rate,
        "engine_over_scalar": engine_rate / scalar_rate,
        "engine_peak_bytes": peak,
        "input_bytes": input_bytes,
        "targets": {"engine_over_bare": 0.5, "engine_over_scalar": 10.0},
        "meets_targets": engine_rate / bare_rate >= 0.5 and engine_rate / scalar_rate >= 10.0,
    }
