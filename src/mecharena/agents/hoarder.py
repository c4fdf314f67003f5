"""Information hoarder: reads everyone's reports, discloses its own signal only when that helps it.

The white paper's information hoarder, on the public channel of :mod:`mecharena.agents.sharer`
(interdependent values: a value is ``(1 - c)`` own signal plus ``c`` the market's mean signal). It
reads this round's reports as a sharer does and bids its value as they imply (naive about any silent
seat), but reports its own signal only below ``disclose_below`` (default: the prior mean). Its bad news
lowers the rivals' estimates truthfully; its good news stays hidden, and a naive rival, reading the
silence as the prior mean, underestimates the common value and bids less: the hoarder wins at a lower
second price and loses less often to a rival whose value is in fact below its own estimate. Against
skeptical sharers, who read silence as the highest signal, hiding raises the rivals' bids instead and
selective disclosure loses to full disclosure (the unravelling argument; sources in
:mod:`mecharena.agents.sharer`). ``disclose_below=0`` never discloses; at or above the top of the
signal range it always does, and plays as a naive sharer.
"""

from pydantic import Field

from mecharena.agents.base import AgentType, Draws, Inbox, MarketContext, Outbox
from mecharena.agents.sharer import SharerState, act as sharer_act, hear, init, open_channel, prior_mean, report, update
from mecharena.core.config import StrictModel
from mecharena.core.types import FloatArray

VERSION = 1


class HoarderParams(StrictModel):
    disclose_below: float | None = Field(None, ge=0, description="reports its signal only below this (None: the "
                                                                  "prior mean)")


def talk(context: MarketContext, params: HoarderParams, state: SharerState, values: FloatArray, inbox: Inbox,
         draws: Draws) -> Outbox | None:
    if not open_channel(context):
        return None
    below = prior_mean(context) if params.disclose_below is None else params.disclose_below
    return report(values, values < below)


def act(context: MarketContext, params: HoarderParams, state: SharerState, values: FloatArray, draws: Draws):
    return sharer_act(context, None, state, values, draws)


AGENT = AgentType(name="hoarder", version=VERSION,
                  summary="reads others' reports, discloses its own signal only when low (common values)",
                  act=act, init=init, update=update, talk=talk, hear=hear, params_model=HoarderParams)
