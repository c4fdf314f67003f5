"""Regression checks: does a mechanism variant close the exploits in a library?

Every stored exploit's deviation (same family params, deviators, population, information,
enforcement and values) is re-scored with :class:`~mecharena.fuzz.score.Scorer` against the
variant (``mechanism`` + ``config``) on an independent seed. Per exploit:

* ``still_pays``: the gain's lower 95% bound is > ``threshold`` (the variant does not fix it);
* ``closed``: its upper 95% bound is <= ``threshold`` (the report's regression rule);
* otherwise ``inconclusive``: more markets would tell.

Exploits found on another mechanism are checked too (switching the rule, e.g. first price to
second price, is a repair), unless ``only`` restricts the check to exploits found on one
mechanism; the others are then skipped with the reason. Exploits whose deviation cannot be
played on the variant (a one-sided family on a two-sided market, a coalition family with one
deviator, or any :class:`~mecharena.core.errors.ConfigError` while scoring) are skipped too.
"""

from typing import Any

from mecharena import mechanisms
from mecharena.core.errors import ConfigError
from mecharena.core.seeding import generator
from mecharena.fuzz.families import FAMILIES
from mecharena.fuzz.library import Library
from mecharena.fuzz.score import Scorer
from mecharena.fuzz.search import applicable

DEFAULT_MARKETS = 2000


def regress(
    library: Library,
    mechanism: str,
    config: dict[str, Any],
    *,
    seed: int = 0,
    markets: int = DEFAULT_MARKETS,
    rounds: int | None = None,
    threshold: float | None = None,
    only: str | None = None,
) -> list[dict[str, Any]]:
    """Re-score every exploit of ``library`` against ``mechanism`` with ``config``.

    Args:
        library: the exploit library.
        mechanism: the variant's mechanism id; exploits of other mechanisms are skipped.
        config: the variant's config (fields not given take their defaults).
        seed: root seed; each exploit is scored on its own stream ``("regress", id)`` of it.
        markets: B per evaluation (markets are the independent units of the interval).
        rounds: T per evaluation; None: each exploit's own search rounds.
        threshold: None: each exploit's own regression threshold.
        only: check only exploits found on this mechanism id (None: every exploit).

    Returns:
        One row per exploit, sorted by id: ``id``, ``family``, ``agent``, ``status`` (``still_pays``,
        ``closed``, ``inconclusive`` or ``skipped``), ``still_pays``, ``closed``, ``threshold``, and
        ``gain`` (``mean``, ``ci95``, ``frequency``, ``markets``, ``rounds``, ``seed``) or ``reason``.

    Raises:
        UnknownIdError: unknown mechanism.
        ConfigError: the variant's config does not validate, or bad sizes.
    """
    variant = mechanisms.get(mechanism)
    variant_config = variant.config(config).model_dump(mode="json")
    if markets < 2 or (rounds is not None and rounds < 1) or seed < 0:
        raise ConfigError(f"markets >= 2, rounds >= 1 and seed >= 0 are required, got markets={markets}, "
                          f"rounds={rounds}, seed={seed}")
    if threshold is not None and not threshold >= 0:
        raise ConfigError(f"threshold must be >= 0, got {threshold}")
    rows = []
    for report in library.list():
        limit = report.regression.threshold if threshold is None else threshold
        row: dict[str, Any] = {"id": report.id, "mechanism": report.mechanism, "family": report.strategy.family,
                               "agent": report.strategy.agent, "threshold": limit}
        if only is not None and report.mechanism != only:
            rows.append({**row, "status": "skipped", "still_pays": False, "closed": False,
                         "reason": f"found on {report.mechanism}, not {only}"})
            continue
        if report.mechanism == variant.name and report.mechanism_version != variant.version:
            row["note"] = (f"found on {report.mechanism} v{report.mechanism_version}; scored on "
                           f"v{variant.version}")
        stream = int(generator(seed, ("regress", report.id)).integers(2**31 - 1))
        t = report.trace.rounds if rounds is None else rounds
        try:
            target = report.target(mechanism=variant.name, config=variant_config, seed=stream, markets=markets, rounds=t)
            scorer = Scorer(target)
            why = applicable(scorer, FAMILIES.get(report.strategy.family), report.agents_involved.deviators)
            if why is not None:
                raise ConfigError(why)
            gain = scorer.score(report.deviation(), seed=stream, markets=markets, rounds=t)
        except ConfigError as exc:
            rows.append({**row, "status": "skipped", "still_pays": False, "closed": False,
                         "reason": f"cannot be played on this variant: {exc}"})
            continue
        still_pays, closed = gain.lo > limit, gain.hi <= limit
        rows.append({**row, "status": "still_pays" if still_pays else "closed" if closed else "inconclusive",
                     "still_pays": still_pays, "closed": closed,
                     "gain": {"mean": gain.mean, "ci95": [gain.lo, gain.hi], "frequency": gain.frequency,
                              "markets": markets, "rounds": t, "seed": stream}})
    return rows
