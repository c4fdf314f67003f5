"""The learner's seat as a stateful shell: :class:`NegotiationEnv` (JSON in and out), with scripted
opponents in every other seat, a transcript of the episode and an optional pitch judge.

Opponents: one archetype per seat, drawn from the episode seed (``coalition_market`` seats one of
each) unless ``opponents`` names them. Every seat's policy has its own generator
(``seeding.generator(seed, ("seat", i))``, seeded when the policy first draws from it), so the same
seed and the same learner actions give a bit-identical transcript.

Bad input: ``step`` validates the action (:func:`~mecharena.negotiation.action.parse_action`,
then :func:`~mecharena.negotiation.core.check_action`) before anything changes and raises
:class:`~mecharena.core.errors.ConfigError` / :class:`~mecharena.core.errors.InvalidActionError`
with the state untouched. With ``strict=False`` it instead plays the declared penalty (the
action becomes a wait and costs ``core.INVALID_FINE``), as the PettingZoo shell does.

>>> env = NegotiationEnv("single_trade", opponents=["cooperative"])
>>> obs = env.reset(seed=0)
>>> obs["lab"], obs["t"], len(obs["jobs"])
(0, 0, 1)
>>> obs, reward, done, info = env.step({"kind": "wait"})
>>> obs["t"], reward, done
(1, 0.0, False)
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError, InvalidActionError
from mecharena.core.seeding import LazyGenerator, generator
from mecharena.negotiation import core
from mecharena.negotiation.action import WAIT, Action, Claim, parse_action
from mecharena.negotiation.judge import score_pitch
from mecharena.negotiation.policies import ARCHETYPES, Policy, make_policy
from mecharena.negotiation.scenario import VERSION, Params, check_task, make_params

SEAT = 0


def draw_opponents(task: str, seed: int, labs: int) -> list[str]:
    """The archetypes of seats 1..L-1 for episode ``seed``."""
    rng = generator(seed, ("opponents", task))
    if labs - 1 >= len(ARCHETYPES):
        return [ARCHETYPES[i] for i in rng.permutation(len(ARCHETYPES))][: labs - 1]
    return [ARCHETYPES[i] for i in rng.integers(0, len(ARCHETYPES), labs - 1).tolist()]


class NegotiationEnv:
    """One episode from the learner's seat (lab 0). ``reset`` then ``step`` until ``done``."""

    def __init__(self, task: str = "single_trade", *, opponents: list[str] | None = None, judge: bool = False,
                 strict: bool = True) -> None:
        self.task = check_task(task)
        self.opponent_names = opponents
        self.judge = judge
        self.strict = strict
        self.params: Params | None = None
        self.state: core.State | None = None
        self._observer: core.Observer | None = None
        self.transcript: list[dict[str, Any]] = []
        self.judge_scores: list[float] = []

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Start episode ``seed`` (none: fresh entropy); the learner's first observation."""
        seed = int(np.random.default_rng().integers(0, 1 << 31)) if seed is None else seed
        self.params = make_params(self.task, seed)
        labs = self.params.labs
        names = self.opponent_names if self.opponent_names is not None else draw_opponents(self.task, seed, labs)
        if len(names) != labs - 1:
            raise ConfigError(f"opponents must name {labs - 1} archetypes for task {self.task!r}, got {len(names)}")
        self.opponents: list[Policy] = [make_policy(n) for n in names]
        self.rngs = [LazyGenerator(seed, ("seat", i)) for i in range(labs)]  # seeded on a seat's first draw
        self.state = core.reset(self.params)
        self.judge_scores = []
        self.transcript = [{"t": 0, "type": "episode", "task": self.task, "seed": seed, "version": VERSION,
                            "labs": labs, "seats": ["learner", *names], "horizon": self.params.horizon,
                            "budgets": self.params.budget.tolist(),
                            "shocks_scheduled": len(self.params.shocks)}]
        return self.observation()

    def observation(self, lab: int = SEAT) -> dict[str, Any]:
        """What ``lab`` sees now (:func:`~mecharena.negotiation.core.observe`)."""
        self._require()
        self._observer = core.observer(self.params, self.state, self._observer)  # one per state, for every lab
        return self._observer.observe(lab)

    @property
    def done(self) -> bool:
        return self.state is not None and core.done(self.params, self.state)

    def check(self, action: Any) -> Action:
        """The learner's action, parsed and checked against the current state.

        Raises:
            ConfigError: malformed (field, value and what is allowed).
            InvalidActionError: well-formed but impossible now (a block, offer or coalition that
                does not exist or is not yours, a payment above the budget, ...), or no episode.
        """
        action = parse_action(action)
        self._require()
        if self.done:
            raise InvalidActionError("the episode is over; call reset()")
        why = core.check_action(self.params, self.state, SEAT, action)
        if why is not None:
            raise InvalidActionError(why)
        return action

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        """Play the learner's action and the opponents' replies; (observation, reward, done, info).

        ``info`` holds the step's ``events``, every lab's ``rewards`` and settled ``values``, and
        in judge mode the ``judge`` scores of this step's pitches (never part of the reward).
        """
        if self.strict:
            action = self.check(action)
        else:
            self._require()
            if self.done:
                raise InvalidActionError("the episode is over; call reset()")
            try:
                action = parse_action(action)
            except ConfigError as exc:
                action = _Malformed(str(exc))
        actions: list[Any] = [action]
        for i, policy in enumerate(self.opponents, start=1):
            actions.append(self._scripted(i, policy))
        return self.advance(actions)

    def advance(self, actions: list[Any]) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
        """Step the core with one action per lab (a :class:`_Malformed` one is fined)."""
        before = self.state
        playable = [WAIT if isinstance(a, _Malformed) else a for a in actions]
        self.state, result = core.step(self.params, before, playable)
        events = list(result.events)
        fined = False
        for lab, a in enumerate(actions):
            if isinstance(a, _Malformed) and before.active[lab]:
                # a malformed action costs what an impossible one does
                self.state = _fine(self.state, lab)
                fined = True
                events.insert(0, {"t": before.t, "type": "invalid", "lab": lab, "action": None, "reason": a.reason,
                                  "fine": core.INVALID_FINE})
        judged = []
        if self.judge:
            for e in events:
                if e["type"] == "pitch":
                    claims = [Claim(**c) for c in e["claims"]]
                    e["judge"] = score_pitch(self.params, before, e["lab"], e["to"], e["text"], claims)
                    judged.append(e["judge"])
                    self.judge_scores.append(e["judge"]["score"])
        self.transcript.extend(events)
        values = self.state.value(self.params)
        # unfined, the core's reward is this very difference (the same operands, the same subtraction)
        rewards = values - before.value(self.params) if fined else result.reward
        done = self.done
        if done:
            self.transcript.append({"t": self.state.t, "type": "end", "values": values.tolist(),
                                    "invalid": self.state.invalid.tolist()})
        info = {"events": events, "rewards": rewards.tolist(), "values": values.tolist()}
        if self.judge:
            info["judge"] = judged
        return self.observation(), float(rewards[SEAT]), done, info

    def _scripted(self, lab: int, policy: Policy) -> Any:
        if not self.state.active[lab]:
            return WAIT
        try:
            return parse_action(policy.act(self.observation(lab), self.rngs[lab]))
        except ConfigError as exc:
            return _Malformed(str(exc))

    def act_for(self, lab: int, policy: Policy) -> Any:
        """``policy``'s action for seat ``lab`` with that seat's generator (parsed; malformed ones marked)."""
        return self._scripted(lab, policy)

    def transcript_jsonl(self) -> str:
        """The episode so far as JSON lines (one event a line, keys sorted: byte-stable)."""
        return "".join(json.dumps(e, sort_keys=True) + "\n" for e in self.transcript)

    def write_transcript(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.transcript_jsonl())
        return path

    def _require(self) -> None:
        if self.state is None:
            raise InvalidActionError("no episode: call reset() first")


@dataclass(frozen=True)
class _Malformed:
    """An action that failed to parse: played as a wait with the invalid-action fine."""

    reason: str


def _fine(state: core.State, lab: int) -> core.State:
    from dataclasses import replace

    budget, invalid = state.budget.copy(), state.invalid.copy()
    budget[lab] -= core.INVALID_FINE
    invalid[lab] += 1
    return replace(state, budget=budget, invalid=invalid)


@dataclass
class Episode:
    task: str
    seed: int
    policy: str
    reward: float  # the learner's total: its settled value at the end
    values: list[float]  # every lab's settled value
    steps: int
    invalid: int  # the learner's invalid actions
    transcript: list[dict[str, Any]] = field(repr=False)
    judge: float | None = None  # mean pitch score in judge mode


def play_episode(task: str, policy: Policy | str, seed: int, *, opponents: list[str] | None = None,
                 judge: bool = False) -> Episode:
    """One episode with ``policy`` in the learner's seat (penalty mode: bad actions are fined)."""
    policy = make_policy(policy) if isinstance(policy, str) else policy
    env = NegotiationEnv(task, opponents=opponents, judge=judge, strict=False)
    env.reset(seed=seed)
    total = 0.0
    while not env.done:
        action = env.act_for(SEAT, policy)
        actions = [action] + [env.act_for(i, p) for i, p in enumerate(env.opponents, start=1)]
        _, reward, _, _ = env.advance(actions)
        total += reward
    return Episode(task, seed, policy.name, total, env.state.value(env.params).tolist(), env.state.t,
                   int(env.state.invalid[SEAT]), env.transcript,
                   float(np.mean(env.judge_scores)) if judge and env.judge_scores else None)
