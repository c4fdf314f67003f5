"""Episodes for ledger tests, with agents that exercise every settlement rule.

``jitter`` shades its bids at random, sits out about one round in five (so seats exit and
re-enter), flags about a third of its bids as collusive, and sends order times where the
mechanism reads them; ``splitter`` bids through two identities (one false name). Together
with audits and fines they make every term of the penalty rule fire.
"""

import json
from pathlib import Path

import numpy as np

from mecharena import agents, mechanisms
from mecharena.agents.base import Action, AgentType
from mecharena.agents.population import Group, Population
from mecharena.ledger.meta import META_FILE, LedgerMeta, meta_checksum, read_meta, write_meta
from mecharena.ledger.store import MANIFEST, file_sha256, jsonl_line
from mecharena.mechanisms.policy import Enforcement, InformationPolicy
from mecharena.sim.loop import Episode, make_episode

ENFORCED = Enforcement(audit_probability=0.5, shill_penalty=0.3, withdrawal_penalty=0.05, collusion_penalty=0.2)


def _jitter(context, params, state, values, draws) -> Action:
    s = values.shape[1]
    orders = getattr(context.spec, "orders_per_agent", 0)
    per_order = (orders,) if orders else ()
    if values.ndim == 3:  # multi-unit demand: one bid per marginal value
        base, tail = values, values.shape[2:]
    else:
        base, tail = values.reshape(values.shape + (1,) * len(per_order)), per_order
    bids = np.minimum(base * (0.6 + 0.4 * draws.uniform("shade", s, *tail)),
                      getattr(context.config, "endowment", np.inf))
    times = None
    if context.mechanism.uses_times:
        jitter = draws.uniform("time", s, *per_order)
        times = (np.arange(orders) + jitter) / orders if orders else jitter
    return Action(bids=bids, enter=draws.uniform("enter", s) > 0.2, colluding=draws.uniform("collude", s) < 0.3,
                  times=times)


def _splitter(context, params, state, values, draws) -> Action:
    return Action(bids=values * 0.9)


JITTER = AgentType(name="jitter", version=3, summary="random shading, exits and collusion flags", act=_jitter)
SPLITTER = AgentType(name="splitter", version=1, summary="bids through two identities", act=_splitter,
                     identities=lambda params: 2)


def population(*groups: tuple[AgentType | str, int]) -> Population:
    """Seats for ``(agent, count)`` groups in order; a str names a registered agent."""
    built, seat = [], 0
    for agent, count in groups:
        agent = agents.REGISTRY.get(agent) if isinstance(agent, str) else agent
        params = agent.params_model()
        group = Group(agent, params, count, seat, agent.identities(params))
        built.append(group)
        seat = group.stop
    return Population(tuple(built))


def episode(mechanism: str, config: dict, groups, *, markets: int = 48, seed: int = 5,
            enforcement: Enforcement | None = None, information: InformationPolicy | None = None,
            start: int = 0) -> Episode:
    return make_episode(mechanisms.get(mechanism), config, population(*groups), markets=markets, seed=seed,
                        enforcement=enforcement, information=information, start=start)


def reseal(path: Path) -> None:
    """Record the parts' checksums as the files are now, as if the writer had written them so:
    replay then gets past its integrity checks to comparing values (what an engine change or
    a faulty writer would show), instead of reporting the edit."""
    entries = [json.loads(line) for line in (path / MANIFEST).read_text().splitlines()]
    for entry in entries:
        part = path / entry["table"] / f"part-{entry['part']:09d}.parquet"
        entry.update(sha256=file_sha256(part), bytes=part.stat().st_size)
    (path / MANIFEST).write_text("".join(map(jsonl_line, entries)))
    meta = read_meta(path)
    write_meta(path, meta.model_copy(update={"manifest_sha256": file_sha256(path / MANIFEST)}))


def edit_meta(path: Path, **changes) -> None:
    """Change fields of ``meta.json`` and recompute its checksum (a valid ledger with other metadata)."""
    data = json.loads((path / META_FILE).read_text()) | changes
    data["checksum"] = meta_checksum(LedgerMeta.model_validate(data))
    (path / META_FILE).write_text(json.dumps(data))
