"""Fuzz one cell from plain settings and store what it finds: what the CLI's ``fuzz`` and ``ring`` and the MCP
``fuzz`` and ``ring`` tools run."""

from pathlib import Path
from typing import Any

from mecharena.fuzz.library import Library


def target_cell(mechanism: str, config: dict[str, Any], population: str, information: dict[str, Any],
                enforcement: dict[str, Any], values: str, seed: int, **fields: Any) -> Any:
    """The :class:`~mecharena.metrics.harness.Cell` of plain settings (``fields``: more of its fields). The
    information and enforcement rules are built first, so their messages name the field.

    Raises:
        MechArenaError: an unknown mechanism or agent type, or a field out of range.
    """
    from mecharena.mechanisms.policy import Enforcement, InformationPolicy
    from mecharena.metrics.harness import Cell

    return Cell(mechanism=mechanism, config=config, population=population,
                information=InformationPolicy.build(**information), enforcement=Enforcement.build(**enforcement),
                values=values, seed=seed, **fields)


def fuzz_cell(mechanism: str, config: dict[str, Any], population: str, information: dict[str, Any],
              enforcement: dict[str, Any], values: str, seed: int, *, threshold: float = 1e-3,
              library: str | Path | None = None, **search: Any) -> tuple[Any, dict[str, Any]]:
    """Fuzz one cell (``search``: the keyword arguments of :func:`mecharena.fuzz.fuzz`) and, when the
    fresh evaluation finds an exploit and ``library`` is given, store its failure report there.

    Returns:
        The :class:`~mecharena.fuzz.FuzzResult`, and it as JSON with ``exploit`` (bool) and
        ``report`` (id and library, or None).

    Raises:
        MechArenaError: an unknown mechanism, agent type or family, or a field out of range (the
            information and enforcement rules are built first, so their messages name the field).
    """
    from mecharena.fuzz.report import build_report
    from mecharena.fuzz.search import fuzz

    target = target_cell(mechanism, config, population, information, enforcement, values, seed)
    result = fuzz(target, seed=seed, threshold=threshold, **search)
    data = result.as_dict()
    data["exploit"] = result.fresh is not None and result.fresh.lo > threshold
    data["report"] = None
    if data["exploit"] and library is not None:
        failure = build_report(result, library)
        Library(library, create=True).add(failure)
        data["report"] = {"id": failure.id, "library": str(library)}
    return result, data


def ring_cell(mechanism: str, config: dict[str, Any], population: str, information: dict[str, Any],
              enforcement: dict[str, Any], values: str, seed: int, *, rounds: int, threshold: float = 1e-3,
              library: str | Path | None = None, **search: Any) -> tuple[Any, dict[str, Any]]:
    """Search a self-enforcing ring in one cell (``search``: the keyword arguments of
    :func:`mecharena.fuzz.ring_policy.ring_policy_search`) and, when the ring's fresh gain is an exploit
    (its lower bound above ``threshold``) and ``library`` is given, store its failure report there, the
    certificate (``enforced``, the best defection's gain, what members do once a partner is caught) in
    the report's ``search.ring`` (with whether its threat is credible).

    Returns:
        The :class:`~mecharena.fuzz.ring_policy.RingPolicyFound`, and it as JSON with ``exploit`` (bool)
        and ``report`` (id and library, or None).

    Raises:
        MechArenaError: an unknown mechanism or agent type, or a field out of range.
    """
    from mecharena.fuzz.report import build_report
    from mecharena.fuzz.ring_policy import ring_policy_search
    from mecharena.fuzz.search import FuzzResult, Trial

    target = target_cell(mechanism, config, population, information, enforcement, values, seed, rounds=rounds)
    found = ring_policy_search(target, seed=seed, **search)
    data = found.as_dict()
    data["exploit"] = found.gain.lo > threshold
    data["report"] = None
    if data["exploit"] and library is not None:
        ring = {k: data[k] for k in ("enforced", "defection_gain", "defector", "punishment", "punished", "credible",
                                     "shirking_gain", "punisher", "phases")}
        trial = Trial(found.deviation, found.gain)
        result = FuzzResult(target, found.deviation.deviators, (found.deviation.family,), {}, (trial,), trial,
                            found.gain, len(found.phases), (), {"rounds": rounds, "threshold": threshold,
                                                               "ring": ring}, behaviour=found.summary)
        failure = build_report(result, library)
        Library(library, create=True).add(failure)
        data["report"] = {"id": failure.id, "library": str(library)}
    return found, data
