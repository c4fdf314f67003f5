"""Sybil: splits into ``m`` identities where that pays (false-name bidding; Yokoo, Sakurai and
Matsubara 2004, *Games Econ. Behav.* 46: 174-188).

Rule: see ``_identities``: each round the agent bids with its own identity alone or with all m,
choosing the one with the higher average realized utility so far, fines included (it learns
the cost of being caught only by being caught), exploring with probability ``explore``.
Splitting pays where more identities mean more chances (a posted price served in random order,
ties) and never in a second-price auction.
"""


from mecharena.agents import _identities as ids
from mecharena.agents.base import AgentType

VERSION = 4  # 4: with false names in a multi-unit auction, the most welfare counts the owner once


def act(context, params, state, values, draws):
    return ids.act(context, params, values, draws, prefer_split=ids.split_gain(state) > 0)


def update(context, params, state, values, action, observation, feedback, draws):
    return ids.update(params, state, action, feedback.utility[:, :: params.m])


AGENT = AgentType(name="sybil", version=VERSION, summary="splits into false-name identities when that pays",
                  act=act, init=ids.init, update=update, params_model=ids.IdentityParams,
                  identities=lambda params: params.m)

