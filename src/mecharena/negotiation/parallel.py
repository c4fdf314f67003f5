"""The negotiation economy as a PettingZoo ``ParallelEnv``: every lab is an agent (``lab_0`` ...),
except seats handed to scripted policies with ``scripted={seat: name}``.

Spaces (fixed per task, sized for its largest economy):

* observation: ``Box(-10, 10, (width,), float32)``, :func:`encode` of the lab's observation:
  the clock and money, each job slot, each block, each incoming offer, each coalition and the
  lab's grievances (zero rows for slots that do not exist).
* action: ``MultiDiscrete([kinds, labs, blocks, jobs, PRICE_LEVELS, slots])`` read by
  :func:`decode` as (kind, lab, block, job slot, price level, offer or coalition slot). Every
  component is read by some kind: ``offer`` sells the block if it is yours (wants it otherwise)
  at the level x its list price, to the named lab, for the named job; ``counter`` answers the
  offer slot at the level x the offer's payment; ``pitch`` claims the job slot's terms with its
  value x the level; ``form_coalition`` invites the lab with share level / 4; and so on.
  An agent may also pass a typed action or its dict instead of an array.

Invalid actions (a component naming something that does not exist or is not yours) are played
as the declared penalty: a wait and ``core.INVALID_FINE``; ``infos[agent]["invalid"]`` says why.
A lab that plays ``finish`` terminates; at the horizon every remaining agent is truncated.
Rewards are each lab's change of settled value.

>>> env = NegotiationParallelEnv("single_trade")
>>> obs, infos = env.reset(seed=0)
>>> sorted(obs), obs["lab_0"].shape == env.observation_space("lab_0").shape
(['lab_0', 'lab_1'], True)
"""

import functools
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pydantic import ValidationError

from mecharena.core.errors import ConfigError
from mecharena.core.seeding import LazyGenerator
from mecharena.negotiation import core
from mecharena.negotiation.action import (
    KINDS,
    MAX_ID,
    AcceptAction,
    Action,
    AllocateAction,
    Claim,
    CommitAction,
    CounterAction,
    FinishAction,
    FormCoalitionAction,
    LeaveAction,
    MessageAction,
    OfferAction,
    PitchAction,
    RejectAction,
    ReleaseAction,
    ReserveAction,
    WaitAction,
    parse_action,
)
from mecharena.negotiation.policies import Policy, make_policy
from mecharena.negotiation.scenario import SPECS, Params, check_task, make_params
from mecharena.sim.seat import SeatedParallelEnv

PRICE_LEVELS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)
SLOTS = 4  # incoming offers and coalitions an agent can address
GLOBAL, JOB, BLOCK, OFFER, COALITION = 6, 11, 13, 5, 5
BOUND = 10.0
MISSING = MAX_ID  # an id that names nothing: the action is refused with the fine


@functools.cache
def max_blocks(task: str) -> int:
    spec = SPECS[check_task(task)]
    return spec.labs * spec.jobs[1] + 3 * spec.joint + spec.extra_provider + spec.decoys + (task == "single_trade")


@functools.cache
def max_jobs(task: str) -> int:
    spec = SPECS[check_task(task)]
    return spec.jobs[1] + spec.joint


@functools.cache
def width(task: str) -> int:
    labs = SPECS[task].labs
    return GLOBAL + max_jobs(task) * JOB + max_blocks(task) * BLOCK + SLOTS * OFFER + SLOTS * COALITION + labs


def encode(task: str, obs: dict[str, Any]) -> np.ndarray:
    """(width,) float32: the observation dict as a vector in [-10, 10]."""
    t, horizon, me = obs["t"], obs["horizon"], obs["lab"]
    # filled as a list, converted once: each value is cast to float32 as if written into the array
    out: list[float] = [0.0] * width(task)
    out[:GLOBAL] = (t / horizon, obs["budget"] / 50, obs["value"] / 50, obs["energy_factor"] / 4,
                    obs["price_factor"] / 4, obs["active"][me])
    at = GLOBAL
    blocks = obs["blocks"]
    for i, job in enumerate(obs["jobs"][: max_jobs(task)]):
        pending = sum(blocks[b]["gpu_hours"] for b in job["pending_blocks"])
        out[at + i * JOB: at + (i + 1) * JOB] = (
            1, job["hours"] / 50, (job["deadline"] - t) / horizon, job["value"] / 100, job["urgency"],
            job["min_reliability"], job["partial"], job["joint"], job["delivered"] / job["hours"], job["settled"],
            pending / job["hours"])
    at += max_jobs(task) * JOB
    for b in blocks[: max_blocks(task)]:
        owner = b["owner"]
        out[at + b["id"] * BLOCK: at + (b["id"] + 1) * BLOCK] = (
            1, owner == me, owner == -1, owner not in (me, -1), (b["start"] - t) / horizon, (b["end"] - b["start"]) / 4,
            b["count"] / 8, b["reliability"], b["energy"], b["list_price"] / 50, b["allocated"], b["started"],
            b["failed"])
    at += max_blocks(task) * BLOCK
    for i, o in enumerate(_incoming(obs)):
        out[at + i * OFFER: at + (i + 1) * OFFER] = (1, o["from"] / obs["labs"], o["payment"] / 50, len(o["give"]) / 8,
                                                     len(o["want"]) / 8)
    at += SLOTS * OFFER
    for i, c in enumerate(_coalitions(obs)):
        share = c["shares"][c["members"].index(me)] if me in c["members"] else 1 - sum(c["shares"])
        done = sum(blocks[b]["gpu_hours"] for _, b in c["blocks"]) / c["job_hours"]
        out[at + i * COALITION: at + (i + 1) * COALITION] = (1, c["owner"] == me, share, c["job_hours"] / 50, done)
    at += SLOTS * COALITION
    out[at: at + obs["labs"]] = [g / 5 for g in obs["grievances"]]
    vector = np.array(out, np.float32)
    return vector.clip(-BOUND, BOUND, out=vector)


def _incoming(obs: dict[str, Any]) -> list[dict]:
    return [o for o in obs["offers"] if o["to"] == obs["lab"]][:SLOTS]


def _coalitions(obs: dict[str, Any]) -> list[dict]:
    return obs["coalitions"][:SLOTS]


def decode(obs: dict[str, Any], vector: Any) -> Action:
    """The typed action a ``MultiDiscrete`` vector stands for, given the agent's observation."""
    kind_i, lab, block, job_i, level_i, slot = (int(x) for x in np.asarray(vector).reshape(-1)[:6])
    kind, level = KINDS[kind_i % len(KINDS)], PRICE_LEVELS[level_i % len(PRICE_LEVELS)]
    me, blocks = obs["lab"], obs["blocks"]
    job = obs["jobs"][job_i]["id"] if job_i < len(obs["jobs"]) else MISSING
    offers, coalitions = _incoming(obs), _coalitions(obs)
    offer = offers[slot] if slot < len(offers) else None
    coalition = coalitions[slot]["id"] if slot < len(coalitions) else MISSING
    known = block < len(blocks)
    price = round(level * blocks[block]["list_price"], 2) if known else level
    match kind:
        case "offer":
            if known and blocks[block]["owner"] == me:
                return OfferAction(to=lab, give=[block], payment=-price)
            return OfferAction(to=lab, want=[block], payment=price, job=job if job != MISSING else None)
        case "counter":
            if offer is None:
                return CounterAction(offer=MISSING * 100, want=[block], payment=price)
            return CounterAction(offer=offer["id"], give=offer["want"], want=offer["give"],
                                 payment=round(offer["payment"] * level, 2))
        case "accept":
            return AcceptAction(offer=MISSING * 100 if offer is None else offer["id"],
                                job=job if job != MISSING and offer is not None and offer["give"] else None)
        case "reject":
            return RejectAction(offer=MISSING * 100 if offer is None else offer["id"])
        case "pitch":
            claims = []
            if job != MISSING:
                j = obs["jobs"][job_i]
                claims = [Claim(job=job, deadline=j["deadline"], value=round(j["value"] * level, 2), hours=j["hours"])]
            return PitchAction(to=None if lab == me else lab, text=f"pitch {job_i}", claims=claims)
        case "reserve":
            return ReserveAction(block=block, job=job if job != MISSING else None)
        case "release":
            return ReleaseAction(block=block)
        case "allocate":
            return AllocateAction(block=block, job=job)
        case "form_coalition":
            return FormCoalitionAction(job=job, members=[lab], shares=[level / 4])
        case "commit":
            return CommitAction(coalition=coalition, blocks=[block])
        case "leave":
            return LeaveAction(coalition=coalition)
        case "message":
            return MessageAction(to=None if lab == me else lab, text=f"level {level:g}")
        case "finish":
            return FinishAction()
    return WaitAction()


class NegotiationParallelEnv(SeatedParallelEnv):
    """Every non-scripted lab of a ``task`` episode as a PettingZoo agent."""

    metadata: ClassVar[dict[str, Any]] = {"name": "mecharena_negotiation_v0", "render_modes": [],
                                          "is_parallelizable": True}

    def __init__(self, task: str = "market_round", scripted: dict[int, str] | None = None) -> None:
        self.task = check_task(task)
        labs = SPECS[task].labs
        scripted = dict(scripted or {})
        for seat in scripted:
            if not isinstance(seat, int) or not 0 <= seat < labs:
                raise ConfigError(f"scripted seats must be labs in [0, {labs - 1}], got {seat!r}")
        if len(scripted) == labs:
            raise ConfigError(f"at least one of the {labs} labs must be an agent; scripted names all of them")
        self.scripted: dict[int, Policy] = {seat: make_policy(name) for seat, name in scripted.items()}
        self.possible_agents = [f"lab_{i}" for i in range(labs) if i not in self.scripted]
        self.agents: list[str] = []
        self.params: Params | None = None
        self.state: core.State | None = None
        self._observer: core.Observer | None = None  # of the current state
        self.set_spaces(lambda: spaces.Box(-BOUND, BOUND, (width(task),), np.float32),
                        lambda: spaces.MultiDiscrete([len(KINDS), labs, max_blocks(task), max_jobs(task),
                                                      len(PRICE_LEVELS), SLOTS]))

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.episode = episode = self.episode_seed(seed)
        self.params = make_params(self.task, episode)
        self.state = core.reset(self.params)
        self.rngs = {seat: LazyGenerator(episode, ("seat", seat)) for seat in self.scripted}
        self.agents = list(self.possible_agents)
        self._obs = {a: self._observe(_lab(a)) for a in self.agents}
        return {a: encode(self.task, self._obs[a]) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        labs = self.params.labs
        chosen: list[Any] = [WaitAction()] * labs
        reasons: dict[str, str | None] = {}
        malformed: list[int] = []
        for agent in self.agents:
            lab, raw = _lab(agent), actions.get(agent)
            try:
                if raw is None:
                    chosen[lab] = WaitAction()
                elif isinstance(raw, dict) or hasattr(raw, "kind"):
                    chosen[lab] = parse_action(raw)
                else:
                    chosen[lab] = decode(self._obs[agent], raw)
            except (ConfigError, ValidationError) as exc:
                reasons[agent] = str(exc)
                malformed.append(lab)
        for seat, policy in self.scripted.items():
            if self.state.active[seat]:
                try:
                    chosen[seat] = parse_action(policy.act(self._observe(seat), self.rngs[seat]))
                except ConfigError:
                    malformed.append(seat)
        before = self.state.value(self.params)
        self.state, result = core.step(self.params, self.state, chosen)
        if malformed:
            budget, invalid = self.state.budget.copy(), self.state.invalid.copy()
            budget[malformed] -= core.INVALID_FINE
            invalid[malformed] += 1
            self.state = replace(self.state, budget=budget, invalid=invalid)
        rewards_all = self.state.value(self.params) - before
        over = result.done
        agents = self.agents
        obs, rewards, terminations, truncations, infos = {}, {}, {}, {}, {}
        for agent in agents:
            lab = _lab(agent)
            self._obs[agent] = self._observe(lab)
            obs[agent] = encode(self.task, self._obs[agent])
            rewards[agent] = float(rewards_all[lab])
            terminations[agent] = not bool(self.state.active[lab])
            truncations[agent] = bool(over) and not terminations[agent]
            infos[agent] = {"invalid": reasons.get(agent, result.invalid[lab])}
        self.agents = [a for a in agents if not (terminations[a] or truncations[a])]
        return obs, rewards, terminations, truncations, infos

    def _observe(self, lab: int) -> dict[str, Any]:
        self._observer = core.observer(self.params, self.state, self._observer)  # one per state, for every lab
        return self._observer.observe(lab)

    def observation_dict(self, agent: str) -> dict[str, Any]:
        """The agent's last observation as the JSON dict (what :func:`decode` reads)."""
        return self._obs[agent]


def _lab(agent: str) -> int:
    return int(agent.split("_")[1])


def parallel_env(task: str = "market_round", scripted: dict[int, str] | None = None) -> NegotiationParallelEnv:
    """PettingZoo-style constructor."""
    return NegotiationParallelEnv(task, scripted)
