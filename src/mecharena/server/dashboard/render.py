"""What the dashboard's page families share: the templates, the error page, number formatting and links, the
market picker's input, and one recorded round of a ledger as the timelines show it.

The templates live in ``templates/`` beside this module: ``base.html`` (head, stylesheet, navigation bar,
``<main>``, the deferred script), ``macros.html`` (the table, a select's options, the market picker, one ledger
round, a timeline of rounds) and one template per page. Autoescaping is on, so every value a page shows (a run
name, an exploit id, an error message) is escaped; attribute values are single-quoted throughout.
"""

import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mecharena.core.errors import ConfigError
from mecharena.report.tables import number


def fmt(value: Any) -> str:
    """A number with 4 significant digits (a dash for None or NaN); anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
        return number(0.0 if x == 0 else x)  # no "-0"
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def link(path: str, query: dict[str, Any] | None = None) -> str:
    """``path`` with a URL-encoded query (entries that are None are left out)."""
    items = {k: v for k, v in (query or {}).items() if v is not None}
    return path + ("?" + urllib.parse.urlencode(items) if items else "")


TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True,
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters["fmt"] = fmt
TEMPLATES.globals["link"] = link


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page ``templates/{template}`` rendered with ``context``, answered with ``status``."""
    return HTMLResponse(TEMPLATES.get_template(template).render(context), status_code=status)


def error_page(status: int, heading: str, message: str, back: tuple[str, str] | None = None) -> HTMLResponse:
    """``<h1>heading</h1>`` and ``<div class="error">message</div>`` with ``status``; ``back`` is (href, text)."""
    return render("error.html", status, heading=heading, message=message, back=back)


class MarketError(ConfigError):
    """A round-by-round view was asked for a market that is not an integer, or that the trace or ledger lacks."""


def parse_market(market: str | None) -> int | None:
    """The ``market`` query field as an int (None where it is absent or empty).

    Raises:
        MarketError: it is not an integer.
    """
    if market in (None, ""):
        return None
    try:
        return int(market)
    except ValueError:
        raise MarketError(f"market must be an integer, got {market!r}") from None


def round_view(data: dict[str, Any] | None, deviators: set[int], messages: list[str]) -> dict[str, Any] | None:
    """One round of one ledger as the ``ledger_round`` macro shows it: the bids (``deviators``' seats starred),
    winners, sellers, payments and messages as sentences; the seats and, for a mechanism that keeps state, its
    declared columns (``extra``). None where the round was not recorded."""
    if data is None:
        return None
    seats = data["seats"]
    won = [s for s in seats if (s["allocation"] or 0) > 0]
    paying = [s for s in seats if (s["payment"] or 0) != 0 or (s["receipt"] or 0) != 0]
    return {
        "bids": ", ".join(f"seat {s['seat']}{'*' if s['seat'] in deviators else ''} {fmt(s['bid'])}"
                          for s in seats if s["active"]) or "none",
        "winners": ", ".join(f"seat {s['seat']}" + (f" ({fmt(s['allocation'])} units)" if s["allocation"] != 1 else "")
                             for s in won) or "none",
        "sellers": ", ".join(f"seat {s['seat']}" for s in seats if (s["allocation"] or 0) < 0),
        "payments": "; ".join(f"seat {s['seat']} pays {fmt(s['payment'])}"
                              + (f", receives {fmt(s['receipt'])}" if s["receipt"] else "") for s in paying)
                    or "nobody pays",
        "revenue": data["revenue"], "price": data["price"], "seats": seats, "deviators": deviators,
        "extra": list(seats[0]["extra"]) if seats else [],  # a stateful mechanism's actions and state
        "messages": messages,
    }
