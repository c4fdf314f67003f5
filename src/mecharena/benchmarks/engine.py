"""Engine throughput: second price, n = 10, B = 100,000 markets, on one set of inputs; and a
double auction (McAfee, 10 buyers x 10 sellers, the same B) against a bare NumPy kernel
(:func:`bare_mcafee`) computing the same outputs (target: the engine at least as fast).

Four paths do the same work on the same markets (who takes part, the winner with ties broken
by priority, the price ``max(second bid, reserve)``, the (B, N) allocation and payments): the
full engine path (:func:`mecharena.mechanisms.clear`: config and shape validation, the compiled
kernel, the whole ``Outcome``), the protocol of mechanisms across rounds
(:func:`mecharena.mechanisms.advance` from the empty state, the round loop's path; target: at
least 1/1.5 of the engine's throughput), a bare NumPy kernel (:func:`bare_clear`, no validation, nothing
else), and the plain-Python scalar reference (on the first ``reference_markets`` markets).
The engine, protocol and bare paths are timed in turn (:mod:`mecharena.benchmarks.timing`), medians of
``repeats``; throughput is markets per wall second and per CPU second; peak memory is the
tracemalloc peak of one engine call (NumPy reports its allocations to tracemalloc).
"""

import tracemalloc

import numpy as np

from mecharena.benchmarks.timing import interleaved, machine_load, report, timed
from mecharena.core.seeding import generator
from mecharena.core.types import FloatArray
from mecharena.mechanisms import advance, clear, get

RESERVE = 0.1


def bare_clear(bids: FloatArray, priority: FloatArray, reserve: float) -> tuple[FloatArray, FloatArray]:
    """Second price in plain NumPy: (B, N) allocation and payments.

    A bid takes part when it is finite, positive and at least the reserve; the highest wins
    (ties: highest priority) and pays the highest other participating bid or the reserve.
    """
    b = np.arange(bids.shape[0])
    taking_part = np.isfinite(bids) & (bids > 0) & (bids >= reserve)
    masked = np.where(taking_part, bids, -np.inf)
    top = masked.max(axis=1)
    winner = np.where(masked == top[:, None], priority, -np.inf).argmax(axis=1)
    sold = top > -np.inf
    masked[b, winner] = -np.inf
    price = np.maximum(masked.max(axis=1), reserve)
    allocation = np.zeros_like(bids)
    payments = np.zeros_like(bids)
    allocation[b[sold], winner[sold]] = 1.0
    payments[b[sold], winner[sold]] = price[sold]
    return allocation, payments


def bare_mcafee(values: FloatArray, bids: FloatArray, buyers: int) -> dict[str, FloatArray]:
    """McAfee's double auction in plain NumPy, for valid orders with no ties (nothing validated):
    the (B, N) allocation, payments, receipts and utility, and the (B,) revenue, welfare and
    largest gains from trade, as the engine's ``Outcome`` has them."""
    rows, index = np.arange(bids.shape[0])[:, None], np.arange(bids.shape[0])
    buy, sell = np.argsort(-bids[:, :buyers], axis=1), np.argsort(bids[:, buyers:], axis=1)
    sb, sa = np.take_along_axis(bids[:, :buyers], buy, 1), np.take_along_axis(bids[:, buyers:], sell, 1)
    pairs = min(sb.shape[1], sa.shape[1])
    q = (sb[:, :pairs] >= sa[:, :pairs]).sum(axis=1)
    last = np.maximum(q - 1, 0)
    b_q, s_q = sb[index, last], sa[index, last]
    more = q < pairs  # a (q+1)-th order on both sides
    p0 = np.where(more, (sb[index, np.minimum(q, pairs - 1)] + sa[index, np.minimum(q, pairs - 1)]) / 2, np.nan)
    full = (q > 0) & more & (s_q <= p0) & (p0 <= b_q)
    trades = np.where(full, q, last)
    allocation = np.zeros(bids.shape)
    allocation[rows, buy] = np.arange(buy.shape[1]) < trades[:, None]
    allocation[rows, buyers + sell] = np.where(np.arange(sell.shape[1]) < trades[:, None], -1.0, 0.0)
    payments = np.where(allocation > 0, np.where(full, p0, b_q)[:, None], 0.0)
    receipts = np.where(allocation < 0, np.where(full, p0, s_q)[:, None], 0.0)
    gains = values * allocation
    v, c = -np.sort(-values[:, :buyers], axis=1), np.sort(values[:, buyers:], axis=1)
    return {"allocation": allocation, "payments": payments, "receipts": receipts,
            "utility": gains - payments + receipts, "revenue": payments.sum(axis=1) - receipts.sum(axis=1),
            "welfare": gains.sum(axis=1), "max_welfare": np.maximum(v[:, :pairs] - c[:, :pairs], 0).sum(axis=1)}


def double_auction(markets: int, side: int, repeats: int, seed: int) -> dict[str, object]:
    """McAfee, ``side`` buyers x ``side`` sellers, truthful orders: the engine against :func:`bare_mcafee`."""
    rng = generator(seed, ("bench", "engine", "double"))
    values = rng.random((markets, 2 * side))
    priority = rng.random((markets, 2 * side))
    mechanism = get("mcafee")
    config = mechanism.config({"buyers": side})
    times = interleaved({"engine": lambda: clear(mechanism, config, values, values, priority),
                         "bare": lambda: bare_mcafee(values, values, side)}, repeats)
    cpu = {k: markets / max(t["cpu_s"], 1e-9) for k, t in times.items()}
    return {"mechanism": "mcafee", "markets": markets, "buyers": side, "sellers": side,
            "markets_per_cpu_s": cpu, "wall_seconds": {k: t["wall_s"] for k, t in times.items()},
            "cpu_seconds": {k: t["cpu_s"] for k, t in times.items()}, "engine_over_bare": cpu["engine"] / cpu["bare"]}


def run(markets: int = 100_000, agents: int = 10, repeats: int = 7, reference_markets: int = 20_000,
        seed: int = 0) -> dict[str, object]:
    """Measure the three paths and return throughputs (wall and CPU), ratios, peak memory and load."""
    load = machine_load()
    reference_markets = min(reference_markets, markets)
    rng = generator(seed, ("bench", "engine"))
    values = rng.random((markets, agents))
    bids = values.copy()
    priority = rng.random((markets, agents))
    mechanism = get("second_price")
    config = mechanism.config({"reserve_price": RESERVE})

    def engine() -> object:
        return clear(mechanism, config, values, bids, priority)

    def protocol() -> object:
        return advance(mechanism, config, {}, values, bids, priority)

    def bare() -> object:
        return bare_clear(bids, priority, RESERVE)

    def scalar() -> object:
        for m in range(reference_markets):
            mechanism.reference(config, values[m].tolist(), bids[m].tolist(), priority[m].tolist(), None)

    times = interleaved({"engine": engine, "protocol": protocol, "bare": bare}, repeats)
    times["scalar"] = timed(scalar, repeats=1)
    tracemalloc.start()
    engine()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    work = {"engine": markets, "protocol": markets, "bare": markets, "scalar": reference_markets}
    wall = {k: work[k] / t["wall_s"] for k, t in times.items()}
    cpu_s = {k: max(t["cpu_s"], 1e-9) for k, t in times.items()}  # a clock tick can exceed a tiny run
    cpu = {k: work[k] / cpu_s[k] for k in times}
    double = double_auction(markets, 10, repeats, seed)
    ratio = {"engine_over_bare": cpu["engine"] / cpu["bare"], "engine_over_scalar": cpu["engine"] / cpu["scalar"],
             "protocol_over_engine": cpu["protocol"] / cpu["engine"],
             "double_auction_engine_over_bare": double["engine_over_bare"]}
    targets = {"engine_over_bare": 0.5, "engine_over_scalar": 10.0, "protocol_over_engine": 1 / 1.5,
               "double_auction_engine_over_bare": 1.0}
    return report("engine", {
        "mechanism": "second_price",
        "markets": markets,
        "agents": agents,
        "reference_markets": reference_markets,
        "engine_markets_per_s": wall["engine"],
        "protocol_markets_per_s": wall["protocol"],
        "bare_kernel_markets_per_s": wall["bare"],
        "scalar_reference_markets_per_s": wall["scalar"],
        "markets_per_cpu_s": cpu,
        "wall_seconds": {k: t["wall_s"] for k, t in times.items()},
        "cpu_seconds": {k: t["cpu_s"] for k, t in times.items()},
        **ratio,
        "ratios_from": "cpu seconds",
        "double_auction": double,
        "engine_peak_bytes": peak,
        "input_bytes": values.nbytes + bids.nbytes + priority.nbytes,
        "targets": targets,
        "meets_targets": all(ratio[k] >= targets[k] for k in targets),
    }, load, repeats)
