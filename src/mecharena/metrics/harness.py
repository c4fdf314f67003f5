"""The evaluation harness: one experiment *cell* in, every outcome metric out.

A :class:`Cell` fixes a mechanism (and config), a population, an information policy, an
enforcement policy, a value distribution, B markets, T rounds and a seed; :func:`evaluate` plays it
with :func:`mecharena.sim.loop.play` and returns metrics with 95% intervals (markets are the
independent units, see :mod:`mecharena.metrics.summary`) and per-round curves.

Definitions (all per market-round unless said; "agents" are economic agents, false-name
identities merged into their owner):

* ``revenue``: the mechanism's budget surplus plus fines collected. The budget surplus
  (``mechanisms.base.Outcome.revenue``) is money in minus money out, with the good a mechanism
  provides itself on its books: payments minus receipts in auctions and exchanges; contributions
  minus refunds, rebates and the good's cost in public goods (0 for a VCM, which pays the whole
  multiplied pot out; the kept excess over the threshold for a provision point).
* ``efficiency``: total realized welfare / total maximum feasible welfare (ratio of sums).
* ``welfare``: realized welfare; ``bidder_surplus``: sum of agents' utilities net of fines.
* ``participation``: share of seats that took part (entered with an eligible action, e.g. a bid
  at or above the reserve); ``entry``: share of agents in the market at all (not dropped out).
* ``negative_payoff_rate`` (individual rationality): share of active agents with utility < 0.
* ``ic_regret`` (incentive compatibility): for one sampled seat per market, the best gain over
  a fixed set of unilateral deviations (its bid scaled by 0, 0.5, 0.8, 0.9, 1.1, 1.25, or its
  value), others' bids held fixed, one-shot; 0 when no deviation helps.
* ``deficit_rate`` (budget balance): share of market-rounds with a budget deficit (budget
  surplus < 0, fines not counted): the mechanism paid out more than it took in.
* ``gini`` (fairness): Gini coefficient of agents' surplus accumulated over the episode (negative
  surplus counted as 0), per market; markets where nobody earned surplus are excluded rather
  than scored as perfectly fair. ``top_share``: the largest agent's share of that surplus.
* ``collusion_gain``: colluding seats' utility minus their utility had they bid truthfully
  (everyone else unchanged); ``price_elevation``: clearing price minus that counterfactual's.
* ``sybil_gain``: owners' utility minus their utility had their false names abstained.
* ``volatility`` (stability): standard deviation over rounds of the mean clearing price;
  ``convergence``: |mean price over the last quarter of rounds - over the third quarter|;
  ``collapse``: 1 if participation in the last quarter is below half of the first round's.
* Robustness (spread across seeds and populations) is computed over cells by the runner.
"""

import hashlib
import json
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from mecharena import agents, mechanisms
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.metrics.summary import mean_ci, ratio_ci
from mecharena.sim.channels import ChannelPolicy, parse_channels
from mecharena.sim.loop import (
    MAX_MARKETS,
    MAX_ROUNDS,
    Episode,
    RoundRecord,
    clearing_price,
    make_episode,
    merge_identities,
    play,
    reclear,
)
from mecharena.sim.simulate import aggregates

DEVIATIONS = (0.0, 0.5, 0.8, 0.9, 1.1, 1.25)


class Cell(StrictModel):
    """One experiment: a mechanism, a population and the rules around them."""

    mechanism: str
    config: dict[str, Any] = Field(default_factory=dict)
    population: str
    information: InformationPolicy = InformationPolicy()
    enforcement: Enforcement = Enforcement()
    values: str = "uniform"
    markets: int = Field(1000, ge=1, le=MAX_MARKETS)
    rounds: int = Field(20, ge=1, le=MAX_ROUNDS)
    seed: int = Field(0, ge=0)
    channels: ChannelPolicy | None = Field(None, description="message channels (none: agents cannot talk)")

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> Any:
        return parse_channels(value)  # text such as "private,monitored,delay=1" too

    def key(self) -> str:
        """A stable id of the cell's contents (the same cell always gets the same key; a cell without
        channels keeps the key it had before channels existed)."""
        data = self.model_dump(mode="json", exclude={"channels"} if self.channels is None else None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def episode(self) -> Episode:
        """Validate every part and build the episode. Raises ConfigError / UnknownIdError."""
        return make_episode(mechanisms.get(self.mechanism), self.config, agents.population(self.population, self.seed),
                            markets=self.markets, seed=self.seed, values=agents.parse_distribution(self.values),
                            information=self.information, enforcement=self.enforcement, channels=self.channels)


def _ic_regret(episode: Episode, record: RoundRecord, seat: np.ndarray) -> FloatArray:
    rows = np.arange(record.bids.shape[0])
    base = record.outcome.utility[rows, seat]
    best = np.zeros_like(base)
    ctx = episode.context
    own = record.bids[rows, seat]
    truthful = ctx.mechanism.truthful(ctx.config, record.values, ctx.spec)[rows, seat]
    high = ctx.spec.action_high
    for alt in [own * m for m in DEVIATIONS] + [truthful]:
        bids = record.bids.copy()
        bids[rows, seat] = np.minimum(alt, high)
        best = np.maximum(best, reclear(episode.context, record, bids).utility[rows, seat] - base)
    return best


def _gini(surplus: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Gini and top share per market of non-negative surplus (B, N); NaN where the total is 0."""
    x = np.sort(np.maximum(surplus, 0.0), axis=1)
    n = x.shape[1]
    total = x.sum(axis=1)
    ranks = np.arange(1, n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gini = np.where(total > 0, (2 * (ranks * x).sum(axis=1) / (n * total)) - (n + 1) / n, np.nan)
        top = np.where(total > 0, x[:, -1] / total, np.nan)
    return gini, top


def evaluate(cell: Cell, on_round=None) -> dict[str, Any]:
    """Play ``cell`` and measure it. Deterministic: the same cell gives identical numbers.

    Returns:
        ``{"metrics": {name: {"mean", "ci95"}}, "curves": {name: [value per round]}, "versions": {...}}``
    """
    episode = cell.episode()
    b, n = cell.markets, episode.population.size
    owner = episode.owner
    is_owner = owner == np.arange(n)
    picks = np.random.default_rng(cell.seed).integers(0, n, size=(cell.rounds, b))  # seat checked for regret
    rows: dict[str, list[FloatArray]] = {k: [] for k in (
        "revenue", "welfare", "max_welfare", "surplus", "participation", "entry", "negative", "regret",
        "deficit", "collusion_gain", "price_elevation", "sybil_gain", "price")}
    cumulative = np.zeros((b, n))
    for record in play(episode, cell.rounds):
        out = record.outcome
        for name, value in aggregates(record).items():
            rows.setdefault(name, []).append(value)
        rows["entry"].append(record.active[:, is_owner].mean(axis=1))
        active = record.active & is_owner
        rows["negative"].append(((record.utility < -1e-12) & active).sum(axis=1) / np.maximum(active.sum(axis=1), 1))
        rows["regret"].append(_ic_regret(episode, record, picks[record.round]))
        rows["deficit"].append((out.revenue < -1e-12).astype(float))
        rows["price"].append(clearing_price(out))
        cumulative += np.where(is_owner, record.utility, 0.0)
        gain = np.zeros(b)
        elevation = np.zeros(b)
        if record.colluding.any():
            ctx = episode.context
            honest = np.where(record.colluding, ctx.mechanism.truthful(ctx.config, record.values, ctx.spec), record.bids)
            cf = reclear(episode.context, record, honest)
            gain = ((out.utility - cf.utility) * record.colluding).sum(axis=1)
            elevation = np.nan_to_num(clearing_price(out) - clearing_price(cf))
        rows["collusion_gain"].append(gain)
        rows["price_elevation"].append(elevation)
        sybil = np.zeros(b)
        false_names = ~is_owner[None, :] & (record.bids.reshape(b, n, -1) > 0).any(axis=2)
        if false_names.any():
            alone = np.where(false_names.reshape(false_names.shape + (1,) * (record.bids.ndim - 2)), 0.0, record.bids)
            cf_utility, _ = merge_identities(owner, record.values, reclear(episode.context, record, alone),
                                             episode.context.mechanism.additive_values)
            has_names = np.zeros((b, n), bool)
            has_names[:, np.unique(owner[~is_owner])] = True
            sybil = ((record.utility + record.penalties - cf_utility) * has_names).sum(axis=1)
        rows["sybil_gain"].append(sybil)
        if on_round is not None:
            on_round(record.round)
    data = {k: np.stack(v) for k, v in rows.items()}
    gini, top = _gini(cumulative[:, is_owner])
    price_curve = _finite_mean(data["price"], axis=1)
    seen = price_curve[np.isfinite(price_curve)]
    quarter = max(cell.rounds // 4, 1)
    drift = abs(_finite_mean(price_curve[-quarter:]) - _finite_mean(price_curve[-2 * quarter:-quarter]))
    participation_curve = data["participation"].mean(axis=1)
    metrics = {
        "revenue": mean_ci(data["revenue"]),
        "efficiency": ratio_ci(data["welfare"], data["max_welfare"]),
        "welfare": mean_ci(data["welfare"]),
        "bidder_surplus": mean_ci(data["surplus"]),
        "participation": mean_ci(data["participation"]),
        "entry": mean_ci(data["entry"]),
        "negative_payoff_rate": mean_ci(data["negative"]),
        "ic_regret": mean_ci(data["regret"]),
        "deficit_rate": mean_ci(data["deficit"]),
        "gini": _finite_ci(gini),
        "top_share": _finite_ci(top),
        "collusion_gain": mean_ci(data["collusion_gain"]),
        "price_elevation": mean_ci(data["price_elevation"]),
        "sybil_gain": mean_ci(data["sybil_gain"]),
        "volatility": _point(seen.std() if seen.size else np.nan),
        "convergence": _point(drift if cell.rounds >= 2 else np.nan),
        "collapse": _point(float(participation_curve[-quarter:].mean() < 0.5 * participation_curve[0])),
    }
    curves = {
        "revenue": data["revenue"].mean(axis=1),
        "efficiency": data["welfare"].sum(axis=1) / np.maximum(data["max_welfare"].sum(axis=1), 1e-300),
        "participation": participation_curve,
        "entry": data["entry"].mean(axis=1),
        "price": price_curve,
        "bidder_surplus": data["surplus"].mean(axis=1),
        "collusion_gain": data["collusion_gain"].mean(axis=1),
    }
    return {
        "metrics": metrics,
        "curves": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in curves.items()},
        "versions": {"mechanism": {cell.mechanism: episode.context.mechanism.version},
                     "agents": episode.population.versions},
        "population": episode.population.spec,
    }


def _finite_mean(x: FloatArray, axis: int | None = None) -> FloatArray:
    """Mean of the finite entries (NaN where there are none), without warnings."""
    ok = np.isfinite(x)
    count = ok.sum(axis=axis)
    return np.where(count > 0, np.where(ok, x, 0.0).sum(axis=axis) / np.maximum(count, 1), np.nan)


def _point(x: float) -> dict[str, Any]:
    x = float(x)
    return {"mean": x, "ci95": [x, x]}


def _finite_ci(x: FloatArray) -> dict[str, Any]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")]}
    return mean_ci(x[None, :]) if x.size > 1 else _point(x[0])
