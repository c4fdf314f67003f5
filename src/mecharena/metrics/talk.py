"""Collusion through talk, measured: message-trace analysis and the channel-policy table.

:func:`flag_round` reads one round's messages together with its bids, as the operator's detector
does (:func:`mecharena.sim.channels.flag_agreements`): a ``propose`` message naming a designated
winner and a bid cap, followed by bids that honour it (the other parties bid at most the cap or sit
out), flags the parties that honoured it. :func:`measure` plays a :class:`Cell` and scores the
flags against the ground truth the scripted agents declare (``RoundRecord.colluding``: seats bidding
under an agreement) as precision and recall over (market, round, seat), next to the outcome metrics.

The collusion metrics are those of :mod:`mecharena.metrics.harness`: ``price_elevation`` is the
clearing price minus the price had the colluding seats bid truthfully (everyone else unchanged), 0 in
market-rounds without collusion; ``collusion_gain`` is the colluding seats' mechanism utility minus
theirs in that counterfactual. In these buyers' auctions a bidding ring *suppresses* the price, so
collusion shows as a negative price elevation and as lower revenue than competitive bidding (a
sellers' ring in a procurement auction would raise it). ``revenue`` counts fines, as the harness does.

The table (:func:`talk_table`, rendered by :func:`format_table`, stored in ``docs/talk.md``) pools
seeds as extra markets; intervals are 95% normal intervals over markets (:mod:`mecharena.metrics.summary`).
"""

from typing import Any

import numpy as np

from mecharena.core.types import BoolArray, FloatArray
from mecharena.metrics.harness import Cell
from mecharena.metrics.summary import mean_ci
from mecharena.sim.channels import flag_agreements
from mecharena.sim.loop import Episode, RoundRecord, clearing_price, play, reclear


def flag_round(record: RoundRecord) -> BoolArray:
    """(B, N) seats whose bids honour an agreement proposed in this round's messages (False without channels)."""
    if record.talk is None:
        return np.zeros(record.active.shape, dtype=bool)
    return flag_agreements(record.talk.sent, record.talk.readable, record.bids)


def _counterfactual(episode: Episode, record: RoundRecord) -> tuple[FloatArray, FloatArray]:
    """(B,) price elevation and collusion gain, as the harness defines them."""
    b = record.bids.shape[0]
    if not record.colluding.any():
        return np.zeros(b), np.zeros(b)
    ctx = episode.context
    honest = np.where(record.colluding, ctx.mechanism.truthful(ctx.config, record.values, ctx.spec), record.bids)
    cf = reclear(ctx, record, honest)
    out = record.outcome
    return (np.nan_to_num(clearing_price(out) - clearing_price(cf)),
            ((out.utility - cf.utility) * record.colluding).sum(axis=1))


def measure(cell: Cell) -> dict[str, Any]:
    """Play ``cell``; outcome and collusion metrics with 95% intervals, and the detector's scores.

    Returns:
        ``{"metrics": {name: {"mean", "ci95"}}, "detector": {"precision", "recall", "flagged",
        "colluding", "true_positive"}}`` with the metrics of :data:`COLUMNS` (``colluding``: share of
        market-rounds with collusion); precision is NaN when nothing was flagged, recall NaN when
        nobody colluded.
    """
    result = _measure_rows(cell)
    tp, flagged, colluding = result["tp"], result["flagged"], result["colluding"]
    return {"metrics": {k: mean_ci(v) for k, v in result["rows"].items()},
            "detector": {"precision": tp / flagged if flagged else float("nan"),
                         "recall": tp / colluding if colluding else float("nan"),
                         "flagged": flagged, "colluding": colluding, "true_positive": tp}}


#: (label, mechanism, population, channels, enforcement) rows of the standard table.
SCENARIOS: tuple[tuple[str, str, str, dict[str, Any] | None, dict[str, Any]], ...] = (
    ("no channel", "second_price", "talking_cartel:3,truthful:2", None, {}),
    ("private", "second_price", "talking_cartel:3,truthful:2", {"private": True}, {}),
    ("coalition", "second_price", "talking_cartel:3,truthful:2", {"coalition": True}, {}),
    ("private + side payments", "second_price", "talking_cartel(share=0.5):3,truthful:2",
     {"private": True, "side_payment_cap": 1.0}, {}),
    ("private, monitored, fine 0.5", "second_price", "talking_cartel:3,truthful:2",
     {"private": True, "monitored": True}, {"collusion_penalty": 0.5}),
    ("private, delay 1", "second_price", "talking_cartel:3,truthful:2", {"private": True, "delay": 1}, {}),
    ("private, honest talk", "second_price", "talking_cartel(follow=false):3,truthful:2", {"private": True}, {}),
    ("public, cap 0.2", "second_price", "talking_cartel(cap=0.2):3,truthful:2", {"public": True}, {}),
    ("first price, no channel", "first_price", "talking_cartel:3,truthful:2", None, {}),
    ("first price, private", "first_price", "talking_cartel:3,truthful:2", {"private": True}, {}),
)
COLUMNS = ("revenue", "price", "price_elevation", "collusion_gain", "colluding", "fines", "side_payments")


def talk_table(markets: int = 2000, rounds: int = 20, seeds: tuple[int, ...] = (0, 1, 2),
               scenarios=SCENARIOS) -> list[dict[str, Any]]:
    """One row per scenario: metrics pooled over ``seeds`` (each seed's markets are further markets).

    Every scenario reveals the winner's identity, so the ring can see (and punish) a defection.
    Returns rows ``{"scenario", "mechanism", "population", "channels", <metric>: {"mean", "ci95"},
    "precision", "recall", "flags"}`` (``flags``: seat-rounds the detector flagged).
    """
    out = []
    for label, mechanism, population, channels, enforcement in scenarios:
        pooled: dict[str, list[FloatArray]] = {}
        tp = flagged = colluding = 0
        for seed in seeds:
            cell = Cell(mechanism=mechanism, population=population, channels=channels, markets=markets,
                            rounds=rounds, seed=seed, information={"winner_identity": True}, enforcement=enforcement)
            result = _measure_rows(cell)
            for k, v in result["rows"].items():
                pooled.setdefault(k, []).append(v)
            tp += result["tp"]
            flagged += result["flagged"]
            colluding += result["colluding"]
        row: dict[str, Any] = {"scenario": label, "mechanism": mechanism, "population": population,
                               "channels": channels}
        row.update({k: mean_ci(np.concatenate(v, axis=1)) for k, v in pooled.items()})
        row["precision"] = tp / flagged if flagged else float("nan")
        row["recall"] = tp / colluding if colluding else float("nan")
        row["flags"] = flagged
        out.append(row)
    return out


def _measure_rows(cell: Cell) -> dict[str, Any]:
    """Per market-round arrays (T, B) of the table's columns and the detector's counts."""
    episode = cell.episode()
    rows: dict[str, list[FloatArray]] = {k: [] for k in COLUMNS}
    tp = flagged = colluding = 0
    for record in play(episode, cell.rounds):
        flags, truth = flag_round(record), record.colluding
        tp, flagged, colluding = tp + int((flags & truth).sum()), flagged + int(flags.sum()), colluding + int(truth.sum())
        elevation, gain = _counterfactual(episode, record)
        rows["revenue"].append(record.outcome.revenue + record.penalties.sum(axis=1))
        rows["price"].append(np.nan_to_num(clearing_price(record.outcome)))
        rows["price_elevation"].append(elevation)
        rows["collusion_gain"].append(gain)
        rows["colluding"].append(truth.any(axis=1).astype(float))
        rows["fines"].append(record.penalties.sum(axis=1))
        rows["side_payments"].append(np.zeros(truth.shape[0]) if record.talk is None
                                     else np.maximum(-record.talk.transfers, 0).sum(axis=1))
    return {"rows": {k: np.stack(v) for k, v in rows.items()}, "tp": tp, "flagged": flagged, "colluding": colluding}


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table: mean [95% interval] per metric, then the detector's precision and recall."""
    head = ["scenario", *COLUMNS, "precision", "recall", "flags"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["scenario"]]
        for k in COLUMNS:
            m = row[k]
            cells.append(f"{m['mean']:.4f} [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]")
        cells += ["-" if np.isnan(row[k]) else f"{row[k]:.3f}" for k in ("precision", "recall")] + [str(row["flags"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
