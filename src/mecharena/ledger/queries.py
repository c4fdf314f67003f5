"""Reading a ledger for people: one market round by round, its messages, where a group of seats gained.

The dashboard's pages (:mod:`mecharena.server.ui`) show these; the SQL against the ledger's views
(:mod:`mecharena.ledger.tables`) lives here, so a page never writes a query and a change of schema
touches one module. Every function takes a connection from :func:`mecharena.ledger.connect`.
"""

from typing import Any

import duckdb

SEAT_COLUMNS = ("seat", "owner", "value", "bid", "active", "valid", "allocation", "payment", "receipt", "penalty",
                "utility")


def declared_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The ``events`` columns of a mechanism that keeps state: its declared actions (``action_NAME``) and each seat's
    state after the round (``state_NAME``), in the ledger's order (none for a mechanism of one round)."""
    columns = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'events' "
                          "ORDER BY ordinal_position").fetchall()
    return [c for (c,) in columns if c.startswith(("action_", "state_"))]


def market_rounds(con: duckdb.DuckDBPyConnection, market: int) -> dict[int, dict[str, Any]]:
    """Each recorded round of one market: ``{round: {"revenue", "welfare", "price", "seats"}}``, ``seats`` a list
    (in seat order) of SEAT_COLUMNS with ``extra``: the declared columns (:func:`declared_columns`)."""
    extra = declared_columns(con)
    events = con.execute(f"SELECT round, {', '.join((*SEAT_COLUMNS, *extra))} FROM events WHERE market = ? "
                         "ORDER BY round, seat", [market]).fetchall()
    totals = con.execute("SELECT round, revenue, welfare, price FROM markets WHERE market = ? ORDER BY round",
                         [market]).fetchall()
    out: dict[int, dict[str, Any]] = {int(t): {"revenue": revenue, "welfare": welfare, "price": price, "seats": []}
                                      for t, revenue, welfare, price in totals}
    for t, *row in events:
        seat = dict(zip(SEAT_COLUMNS, row[:len(SEAT_COLUMNS)], strict=True))
        seat["extra"] = dict(zip(extra, row[len(SEAT_COLUMNS):], strict=True))
        out.setdefault(int(t), {"revenue": None, "welfare": None, "price": None, "seats": []})["seats"].append(seat)
    return out


def market_messages(con: duckdb.DuckDBPyConnection, market: int) -> dict[int, list[str]]:
    """One market's messages per round, each as its fields joined by commas ({} for a ledger without messages:
    auction ledgers record none)."""
    tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "messages" not in tables:
        return {}
    out: dict[int, list[str]] = {}
    for row in con.execute("SELECT * FROM messages WHERE market = ? ORDER BY round", [market]).fetchall():
        out.setdefault(int(row[0]), []).append(", ".join(str(x) for x in row[1:]))
    return out


def utility_by_market(con: duckdb.DuckDBPyConnection, seats: list[int]) -> dict[int, float]:
    """``{market: the seats' utility summed over the recorded rounds}`` (markets where they hold no event are
    absent)."""
    rows = con.execute("SELECT market, sum(utility) FROM events WHERE list_contains(?, seat) GROUP BY market",
                       [list(map(int, seats))]).fetchall()
    return {int(m): float(u or 0.0) for m, u in rows}
