"""The live referee: a designer episode played in the browser, stepped by a designer policy or by a mechanism
chosen in a form (templates ``live.html``, ``session.html``). Episodes live in memory, bounded in number, and
expire when idle."""

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mecharena.core.errors import ConfigError, InvalidActionError, UnknownIdError
from mecharena.designer import core as designer
from mecharena.designer.action import COALITIONS, FLAGS, PENALTIES, RULES, MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import Policy, make_policy
from mecharena.designer.population import STAGES
from mecharena.server.dashboard.render import error_page, fmt, render
from mecharena.server.shell import SessionLimitError, SessionStore

LIVE_POLICIES = ("random", "greedy", "learned")
DEFAULT_MAX_SESSIONS = 32
DEFAULT_IDLE_TIMEOUT = 1800.0  # seconds
LIVE_FEATURES = (("welfare", "welfare"), ("fairness", "fairness"), ("participation", "participation"),
                 ("stability", "stability"), ("price_mean", "price"), ("dropouts", "dropouts"),
                 ("collusion", "collusion"), ("sold", "sold"))
CHART = {"welfare": "#1f77b4", "fairness": "#d62728", "participation": "#2ca02c"}  # drawn per round, in [0, 1]
TRUE, FALSE = ("on", "true", "1", "yes"), ("off", "false", "0", "no", "")

PolicyFactory = Callable[[str, int, int], Policy]  # (name, stage, seed) -> a policy


def describe(action: MechanismAction) -> str:
    """A one-line summary of a mechanism."""
    reserve = "current reserve" if action.reserve is None else f"reserve {fmt(action.reserve)}"
    shown = [f.replace("_", " ") for f in FLAGS if getattr(action, f)]
    fines = [f"{p.removesuffix('_penalty')} {fmt(getattr(action, p))}" for p in PENALTIES if getattr(action, p) > 0]
    return (f"{action.rule}, {reserve}; reveals: {', '.join(shown) or 'nothing'}; fines: {', '.join(fines) or 'none'}; "
            f"coalition: {action.coalition}")


def parse_manual(form: dict[str, str]) -> MechanismAction:
    """A :class:`MechanismAction` from the manual form's fields.

    Blank numbers keep the field's default (a blank ``reserve`` keeps the reserve in force); a
    missing checkbox is False, as HTML forms send them.

    Raises:
        ConfigError: a field is unknown, of the wrong type or out of range (the message names it).
    """
    fields: dict[str, Any] = {}
    for name, raw in form.items():
        value = raw.strip()
        if name in FLAGS:
            if value.lower() not in TRUE + FALSE:
                raise ConfigError(f"{name} must be a checkbox value (on or off, true or false), got {raw!r}")
            fields[name] = value.lower() in TRUE
        elif value:
            fields[name] = value
    for flag in FLAGS:
        fields.setdefault(flag, False)
    return MechanismAction.build(**fields)


@dataclass(slots=True)
class LiveEpisode:
    """One referee episode played in the browser: the environment, the designer and what happened."""

    stage: int
    policy_name: str
    policy: Policy
    seed: int
    env: DesignerEnv
    observation: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)  # every round played: step, rule, FEATURES
    steps: list[dict[str, Any]] = field(default_factory=list)  # step, actor, mechanism, reward, components
    why: list[str] = field(default_factory=list)  # the reason for the last choice
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, stage: int, policy_name: str, policy: Policy, seed: int) -> "LiveEpisode":
        env = DesignerEnv(stage=stage)
        observation = env.reset(seed=seed)
        why = [("no choice yet: the episode starts under the default mechanism (second price, no reserve, "
               "price revealed); step to let the designer choose, or choose yourself")]
        return cls(stage, policy_name, policy, seed, env, observation, why=why)

    @property
    def done(self) -> bool:
        return self.env.done

    def step_policy(self) -> None:
        """The designer picks the mechanism from what it observes; one step is played under it.

        Raises:
            InvalidActionError: the episode is over.
        """
        with self.lock:
            self._require_running()
            why = self._explain()
            self._play(self.policy.act(self.observation), "policy", why)

    def step_manual(self, form: dict[str, str]) -> None:
        """Play one step under the mechanism of the manual form (validated before anything changes).

        Raises:
            ConfigError: invalid input (the message names the field); the episode is unchanged.
            InvalidActionError: the episode is over.
        """
        action = parse_manual(form)
        with self.lock:
            self._require_running()
            self._play(action, "manual", ["your own mechanism (manual step): " + describe(action)])

    def _require_running(self) -> None:
        if self.done:
            raise InvalidActionError(f"the episode is over ({designer.HORIZON} steps); start a new one")

    def _play(self, action: MechanismAction, actor: str, why: list[str]) -> None:
        observation, reward, _, info = self.env.step(action)
        step = len(self.steps) + 1
        window = observation["window"]["rounds"][-designer.ROUNDS:]
        features = observation["window"]["features"]
        for values in window:
            self.rounds.append({"round": len(self.rounds) + 1, "step": step, "rule": self.env.mechanism.rule,
                                **dict(zip(features, values, strict=True))})
        self.steps.append({"step": step, "actor": actor, "mechanism": describe(self.env.mechanism), "reward": reward,
                           **{c: info[c] for c in designer.COMPONENTS}})
        self.observation = observation
        self.why = why

    def _explain(self) -> list[str]:
        """Why the policy chooses what it does from the observation it saw (the policy says)."""
        proxies = self.observation["proxies"]
        return self.policy.explain(self.observation) + [
            "proxies seen: " + ", ".join(f"{k} = {fmt(v)}" for k, v in proxies.items())]


def chart(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Welfare, fairness and participation per round as the ``svg#live-chart`` draws them (None before a round)."""
    if not rounds:
        return None
    width, height, pad = 640, 150, 24
    total = designer.HORIZON * designer.ROUNDS
    lines = [(colour, " ".join(f"{pad + (width - 2 * pad) * (r['round'] - 1) / max(total - 1, 1):.1f},"
                               f"{height - pad - (height - 2 * pad) * min(max(float(r[key]), 0.0), 1.0):.1f}"
                               for r in rounds)) for key, colour in CHART.items()]
    return {"width": width, "height": height, "pad": pad, "lines": lines, "legend": list(CHART.items())}


class LivePages:
    """The live referee's pages and its episodes, kept in a bounded store of sessions.

    Args:
        policies: builds a designer policy from (name, stage, seed); default
            :func:`~mecharena.designer.policies.make_policy`, the learned one trained once per stage.
        max_sessions: live episodes kept at once.
        idle_timeout: seconds after which an untouched live episode is dropped.
    """

    def __init__(self, policies: PolicyFactory | None = None, max_sessions: int = DEFAULT_MAX_SESSIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.sessions = SessionStore(max_sessions=max_sessions, idle_timeout=idle_timeout)
        self.sessions_lock = threading.Lock()
        self.policy_factory = policies
        self._learned: dict[int, Policy] = {}
        self._learned_lock = threading.Lock()

    def policy(self, name: str, stage: int, seed: int) -> Policy:
        """The designer policy ``name`` for ``stage``; the learned one is trained once per stage and kept."""
        if self.policy_factory is not None:
            return self.policy_factory(name, stage, seed)
        if name == "learned":
            with self._learned_lock:
                if stage not in self._learned:
                    self._learned[stage] = make_policy("learned", stage)
                return self._learned[stage]
        return make_policy(name, stage, seed=seed)

    def live_page(self, error: str = "", status: int = 200, form: dict[str, str] | None = None) -> HTMLResponse:
        """``GET /live``: the form that starts an episode (``form``: the values to show again after ``error``)."""
        form = form or {}
        return render("live.html", status, error=error, stages=[str(s) for s in STAGES], policies=LIVE_POLICIES,
                      stage=form.get("stage", "1"), policy=form.get("policy", "greedy"), seed=form.get("seed", ""),
                      rounds=designer.ROUNDS, horizon=designer.HORIZON)

    def start(self, form: dict[str, str]) -> Response:
        """``POST /live``: start an episode and redirect to its page (the start page again for invalid input)."""
        stage_text, name = form.get("stage", "1").strip(), form.get("policy", "").strip()
        seed_text = form.get("seed", "").strip()
        if stage_text not in {str(s) for s in STAGES}:
            return self.live_page(f"stage must be one of {', '.join(map(str, STAGES))}, got {stage_text!r}", 422, form)
        if name not in LIVE_POLICIES:
            return self.live_page(f"policy must be one of {', '.join(LIVE_POLICIES)}, got {name!r}", 422, form)
        if seed_text and not (seed_text.isdigit() and int(seed_text) < 2**63):
            return self.live_page(f"seed must be an integer >= 0 (or blank for a random one), got {seed_text!r}",
                                  422, form)
        stage = int(stage_text)
        seed = int(seed_text) if seed_text else secrets.randbelow(2**31)
        episode = LiveEpisode.start(stage, name, self.policy(name, stage, seed), seed)
        with self.sessions_lock:
            try:
                session = self.sessions.create()
            except SessionLimitError:
                return self.live_page(f"too many live episodes: {self.sessions.max_sessions} are in use; wait for "
                                      f"idle ones to expire ({self.sessions.idle_timeout:g} s)", 503, form)
            session.env = episode
        return RedirectResponse(f"/live/{session.id}", status_code=303)

    def episode(self, session_id: str) -> LiveEpisode | None:
        """The live episode ``session_id`` (None: it never existed or it expired)."""
        with self.sessions_lock:
            try:
                return self.sessions.get(session_id).env
            except UnknownIdError:
                return None

    def episode_not_found(self, session_id: str) -> HTMLResponse:
        return error_page(404, "Episode not found",
                          f"There is no live episode {session_id[:40]!r}: it never existed, or it expired after "
                          f"{self.sessions.idle_timeout:g} s idle, or the server restarted.",
                          ("/live", "start a new episode"))

    def session_page(self, session_id: str, error: str = "", status: int = 200) -> HTMLResponse:
        """``GET /live/{session_id}``: the mechanism in force and why, the step forms, the rounds and steps."""
        episode = self.episode(session_id)
        if episode is None:
            return self.episode_not_found(session_id)
        return render("session.html", status, session_id=session_id, episode=episode, error=error,
                      mechanism=episode.env.mechanism, describe=describe, hidden=episode.env.hidden(),
                      chart=chart(episode.rounds), rounds=designer.ROUNDS, horizon=designer.HORIZON,
                      components=designer.COMPONENTS, features=LIVE_FEATURES, rules=RULES, coalitions=COALITIONS,
                      flags=FLAGS, penalties=PENALTIES)

    def step(self, session_id: str, manual: dict[str, str] | None) -> Response:
        """``POST /live/{session_id}/step`` (``manual`` None) or ``/manual``: play one step, back to the page."""
        episode = self.episode(session_id)
        if episode is None:
            return self.episode_not_found(session_id)
        try:
            if manual is None:
                episode.step_policy()
            else:
                episode.step_manual(manual)
        except InvalidActionError as exc:
            return self.session_page(session_id, str(exc), 409)
        except ConfigError as exc:
            return self.session_page(session_id, f"invalid mechanism: {exc}", 422)
        return RedirectResponse(f"/live/{session_id}", status_code=303)
