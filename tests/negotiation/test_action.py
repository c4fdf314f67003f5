import pytest

from mecharena.core.errors import ConfigError
from mecharena.negotiation.action import KINDS, MAX_TEXT, OfferAction, parse_action


def test_every_kind_parses_from_json_fields():
    minimal = {"offer": {"to": 1, "want": [0]}, "counter": {"offer": 0, "give": [1]}, "accept": {"offer": 0},
               "reject": {"offer": 0}, "pitch": {}, "reserve": {"block": 0}, "release": {"block": 0},
               "form_coalition": {"job": 0, "members": [1], "shares": [0.2]},
               "commit": {"coalition": 0, "blocks": [1]}, "leave": {"coalition": 0},
               "allocate": {"block": 0, "job": 0}, "message": {"to": None, "text": "hi"}, "wait": {}, "finish": {}}
    assert set(minimal) == set(KINDS)
    for kind, fields in minimal.items():
        assert parse_action({"kind": kind, **fields}).kind == kind


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "bribe"}, r"kind must be one of offer, counter, .*, got 'bribe'"),
    ([1, 2], r"action must be a JSON object with a 'kind' field, got list"),
    ({"kind": "message", "to": 1, "text": "x" * (MAX_TEXT + 1)},
     rf"text must be a str of at most {MAX_TEXT} characters, got 'xxxx'\.\.\. \({MAX_TEXT + 1} characters\)"),
    ({"kind": "offer", "to": 1, "payment": 5}, r"an offer must name at least one block in give or want, got neither"),
    ({"kind": "offer", "to": 1, "want": [2], "payment": float("inf")}, r"payment must be a finite float in \[-1000000"),
    ({"kind": "commit", "coalition": 0}, r"a commitment must put in blocks or funds > 0, got neither"),
    ({"kind": "form_coalition", "job": 0, "members": [1, 2], "shares": [0.7, 0.6]},
     r"shares must sum to at most 1, got 1.3"),
    ({"kind": "form_coalition", "job": 0, "members": [1, 2], "shares": [0.5]},
     r"shares must have one entry per member \(2\), got 1"),
    ({"kind": "reserve", "block": -1}, r"block must be a finite int in \[0, 10000\], got -1"),
    ({"kind": "reserve", "block": 1, "price": 3}, r"unknown field 'price' for ReserveAction; allowed: kind, block, job"),
    ({"kind": "accept"}, r"offer is required"),
])
def test_malformed_actions_name_field_value_and_range(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_action(data)


def test_typed_actions_pass_through():
    action = OfferAction(to=1, want=[3], payment=2.5)
    assert parse_action(action) is action
