"""What the LLM trainers learn on: environment states as dataset rows, the answer schema, the rewards.

A :class:`Task` turns states of one environment into dataset rows: the chat prompt the LLM policy
sees at inference, plus the columns that rebuild that exact state (``key``: replaying a seeded
episode's history). A completion is scored on the state its own row describes, so the
``num_generations`` completions of one prompt (a GRPO group) differ only by what they answered.

* ``designer:STAGE`` (the referee, :mod:`mecharena.designer`): the answer is a
  :class:`~mecharena.llm.designer.DesignerChoice`; the trained reward is ``composite``, the step's
  reward (welfare x fairness x participation x stability over its scored rounds); the components
  are logged beside it.
* ``negotiation:TASK`` (the scarce-GPU economy, :mod:`mecharena.negotiation`): the answer is a
  :class:`~mecharena.llm.negotiator.NegotiationChoice`; the trained reward is ``return``, the
  learner's settled value gained from this state to the end of the episode when it plays the
  answer now and the rule-based expert plays its seat afterwards (a malformed answer is played as
  the env's invalid-action fine). Every turn is thus scored on the state that turn saw, with the
  episode's outcome, not only the next step's. Rows are decision states: states where the expert
  acts rather than waits.

Every task also reports ``format``: 1 for a valid answer, 0.5 for a JSON object that is not one,
0 for no JSON object (logged; trained on only with ``format_weight`` > 0).
"""

import copy
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.core.seeding import generator
from mecharena.llm.structured import first_json_object

Row = dict[str, Any]
TASKS = ("designer:STAGE", "negotiation:TASK")


def format_score(valid: bool, text: str) -> float:
    return 1.0 if valid else 0.5 if first_json_object(text) is not None else 0.0


@dataclass(frozen=True)
class DesignerTask:
    """The referee at one curriculum stage (see the module docstring)."""

    stage: int
    max_history: int = 3  # rows replay 0..3 menu actions before their state

    @property
    def name(self) -> str:
        return f"designer:{self.stage}"

    @property
    def choice(self) -> type:
        from mecharena.llm.designer import DesignerChoice

        return DesignerChoice

    @property
    def rewards(self) -> tuple[str, ...]:
        from mecharena.designer.core import COMPONENTS

        return ("format", *COMPONENTS, "composite")

    trained = "composite"
    columns = ("stage", "seed", "population", "history")

    def state(self, key: tuple) -> Any:
        """``reset(seed, population)``, then the JSON ``history`` replayed."""
        from mecharena.designer.env import DesignerEnv

        stage, seed, population, history = key
        env = DesignerEnv(int(stage))
        env.reset(seed=int(seed), population=int(population))
        for action in json.loads(history):
            env.step(action)
        return env

    def row(self, seed: int, history: list | tuple = ()) -> Row:
        """The prompt of episode ``seed`` after ``history`` (MechanismActions) and the columns that rebuild it."""
        from mecharena.designer.env import population_seeds
        from mecharena.llm.designer import prompt

        replayed = json.dumps([a.model_dump(mode="json", exclude_none=True) for a in history])
        key = (self.stage, int(seed), int(population_seeds(seed, 1)[0]), replayed)
        return {"prompt": prompt(self.state(key).vector()), **dict(zip(self.columns, key, strict=True))}

    def rows(self, count: int, seed: int) -> list[Row]:
        """Row ``i``: episode ``seed + i`` after ``i % (max_history + 1)`` seeded random menu actions."""
        from mecharena.designer.policies import menu

        options = [action for _, action in menu()]
        rng = generator(seed, ("designer-rows", self.stage))
        return [self.row(seed + i, [options[int(j)] for j in rng.integers(0, len(options), i % (self.max_history + 1))])
                for i in range(count)]

    def prompt_of(self, state: Any) -> list[dict[str, str]]:
        from mecharena.llm.designer import prompt

        return prompt(state.vector())

    def score(self, state: Any, text: str) -> dict[str, float]:
        """Format, components and composite of ``text`` stepped from ``state`` (not changed)."""
        from mecharena.designer.core import COMPONENTS
        from mecharena.llm.designer import parse_choice

        action, _ = parse_choice(text)
        if action is None:
            return {"format": format_score(False, text), "composite": 0.0} | {c: 0.0 for c in COMPONENTS}
        _, reward, _, info = copy.copy(state).step(action)  # step replaces state (a pure core): a shallow copy will do
        return {"format": 1.0, "composite": reward} | {c: info[c] for c in COMPONENTS}

    def advance(self, state: Any, text: str) -> tuple[Any, float, bool, bool]:
        """One turn of a multi-turn rollout: (the next state, the turn's reward, done, whether the answer
        was valid). An invalid answer keeps the mechanism in force, as the LLM designer does at
        inference, and earns 0."""
        from mecharena.llm.designer import mechanism_of, parse_choice

        action, _ = parse_choice(text)
        after = copy.copy(state)
        _, reward, done, _ = after.step(action if action is not None else mechanism_of(state.vector()))
        return after, reward if action is not None else 0.0, done, action is not None


@dataclass(frozen=True)
class NegotiationTask:
    """The learner's seat of one negotiation task (see the module docstring)."""

    task: str

    @property
    def name(self) -> str:
        return f"negotiation:{self.task}"

    @property
    def choice(self) -> type:
        from mecharena.llm.negotiator import NegotiationChoice

        return NegotiationChoice

    rewards = ("format", "return")
    trained = "return"
    columns = ("task", "seed", "history")

    def state(self, key: tuple) -> Any:
        from mecharena.negotiation.env import NegotiationEnv

        task, seed, history = key
        env = NegotiationEnv(task, strict=False)
        env.reset(seed=int(seed))
        for action in json.loads(history):
            env.step(action)
        return env

    def rows(self, count: int, seed: int) -> list[Row]:
        """Row ``i``: a decision state of episode ``seed + i`` where the expert, playing the episode
        from the start, does something other than wait (the ``i``-th such state, cyclically). In the
        states where the expert waits, most answers change nothing, and a group of them carries no
        learning signal."""
        from mecharena.negotiation.policies import Expert

        rows = []
        for i in range(count):
            env = self.state((self.task, seed + i, "[]"))
            history: list[dict[str, Any]] = []
            decisions = []
            while not env.done:
                action = env.act_for(0, Expert())
                if getattr(action, "kind", "wait") != "wait":  # a malformed action is no decision
                    decisions.append(json.dumps(history))
                history.append(action.model_dump(mode="json"))
                env.step(action)
            key = (self.task, seed + i, decisions[i % len(decisions)] if decisions else "[]")
            rows.append({"prompt": self.prompt_of(self.state(key)), **dict(zip(self.columns, key, strict=True))})
        return rows

    def prompt_of(self, state: Any) -> list[dict[str, str]]:
        from mecharena.llm.negotiator import prompt

        return prompt(state.observation())

    def score(self, state: Any, text: str) -> dict[str, float]:
        """``format`` and the settled value gained to the episode's end (the expert plays on)."""
        from mecharena.negotiation.policies import Expert

        env, gained, done, valid = self.advance(state, text)
        expert = Expert()
        while not done:
            _, reward, done, _ = env.step(env.act_for(0, expert))
            gained += reward
        return {"format": format_score(valid, text), "return": gained}

    def advance(self, state: Any, text: str) -> tuple[Any, float, bool, bool]:
        """One turn of a multi-turn rollout: (the next state, the turn's reward, done, whether the answer
        was an action); an answer that is no action is played as the invalid-action fine."""
        from mecharena.llm.negotiator import choice_action

        action, valid = choice_action(text)
        env = copy.deepcopy(state)
        _, reward, done, _ = env.step(action)
        return env, reward, done, valid


Task = DesignerTask | NegotiationTask


def make_task(spec: str) -> Task:
    """``designer:STAGE`` (1..5) or ``negotiation:TASK`` (a negotiation task name).

    Raises:
        UnknownIdError: another environment, or an unknown negotiation task.
        ConfigError: a stage outside 1..5.
    """
    env, _, arg = str(spec).partition(":")
    if env == "designer":
        from mecharena.designer.population import check_stage

        try:
            return DesignerTask(check_stage(int(arg or 2)))
        except ValueError:
            raise ConfigError(f"task {spec!r}: the stage must be an integer in 1..5") from None
    if env == "negotiation":
        from mecharena.negotiation.scenario import check_task

        return NegotiationTask(check_task(arg or "single_trade"))
    raise UnknownIdError(f"unknown task {spec!r}; allowed: {', '.join(TASKS)}")


class TaskReward:
    """One reward for :class:`trl.GRPOTrainer` (logged as ``rewards/<name>/mean``).

    TRL hands every reward the row's columns next to each completion. Each distinct state is
    rebuilt once per call, checked against the prompt the completion answered, and every distinct
    (state, answer) is scored once; the scores are shared by the task's rewards through ``cache``.
    """

    def __init__(self, task: Task, name: str, cache: dict | None = None) -> None:
        if name not in task.rewards:
            raise ConfigError(f"reward must be one of {list(task.rewards)}, got {name!r}")
        self.__name__ = self.name = name
        self.task = task
        self.cache = {} if cache is None else cache

    def __call__(self, prompts: list | None, completions: list, **columns: Any) -> list[float]:
        states: dict[tuple, Any] = {}
        out = []
        for i, completion in enumerate(completions):
            key = tuple(columns[c][i] for c in self.task.columns)
            text = completion_text(completion)
            if (key, text) not in self.cache:
                if key not in states:
                    states[key] = self.task.state(key)
                    if prompts is not None and prompts[i] != self.task.prompt_of(states[key]):
                        raise ConfigError(f"row {i}: the prompt does not describe the state its columns rebuild "
                                          f"({dict(zip(self.task.columns, key, strict=True))})")
                self.cache[key, text] = self.task.score(states[key], text)
            out.append(self.cache[key, text][self.name])
        if len(self.cache) > 50_000:  # a long run: old states are not asked again
            self.cache.clear()
        return out


def task_rewards(task: Task) -> list[TaskReward]:
    """The task's rewards in its order, sharing one score cache."""
    cache: dict = {}
    return [TaskReward(task, name, cache) for name in task.rewards]


def completion_text(completion: Any) -> str:
    """The text of one completion (a conversational completion is ``[{"role": "assistant", ...}]``)."""
    if isinstance(completion, list):
        return str(completion[-1]["content"]) if completion else ""
    return str(completion)


def scores(task: Task, rows: list[Row], texts: list[str]) -> list[dict[str, float]]:
    """Every reward of ``texts[i]`` on ``rows[i]``'s state."""
    states: dict[tuple, Any] = {}
    out = []
    for row, text in zip(rows, texts, strict=True):
        key = tuple(row[c] for c in task.columns)
        if key not in states:
            states[key] = task.state(key)
        out.append(task.score(states[key], text))
    return out


def mean_ci(values: Any) -> tuple[float, float, float]:
    """Mean and normal 95% interval of ``values``."""
    values = np.asarray(values, dtype=float)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(values.mean() - half), float(values.mean() + half)


__all__ = ["DesignerTask", "NegotiationTask", "Task", "TaskReward", "completion_text", "make_task", "mean_ci",
           "scores", "task_rewards"]
