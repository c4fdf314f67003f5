"""Audit evader: misreports (bids with false names) when the expected penalty is low.

Rule: like ``sybil`` it learns the average utility of bidding alone and of splitting into
``m`` identities, but it measures them *before* fines and weighs the announced rules instead:
it splits when the learned gain from splitting exceeds the expected fine,
``audit_probability * shill_penalty * (m - 1)`` (Becker 1968's calculus of crime and punishment).
It explores with probability ``explore``.
"""

from mecharena.agents import _identities as ids
from mecharena.agents.base import AgentType

VERSION = 4  # 4: with false names in a multi-unit auction, the most welfare counts the owner once


def act(context, params, state, values, draws):
    rules = context.enforcement
    expected_fine = rules.audit_probability * rules.shill_penalty * (params.m - 1)
    return ids.act(context, params, values, draws, prefer_split=ids.split_gain(state) > expected_fine)


def update(context, params, state, values, action, observation, feedback, draws):
    gross = feedback.utility + feedback.penalty
    return ids.update(params, state, action, gross[:, :: params.m])


AGENT = AgentType(name="audit_evader", version=VERSION, summary="false-name bids when the expected fine is low",
                  act=act, init=ids.init, update=update, params_model=ids.IdentityParams,
                  identities=lambda params: params.m)
