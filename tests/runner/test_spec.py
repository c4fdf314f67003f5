"""Experiment specs: pinned error messages (with lines), expansion and keys."""

import pytest
from typer.testing import CliRunner

from mecharena.cli import app
from mecharena.core.errors import ConfigError
from mecharena.runner import SpecError, load_spec, parse_spec
from tests.runner.specs import SMALL, SMALL_CELLS, write


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(text, "spec.yaml")
    assert isinstance(info.value, SpecError)
    return str(info.value)


def test_malformed_yaml_names_the_line():
    text = "name: x\nmarkets: 10\nmechanisms:\n  - {id: second_price\npopulations: [truthful:2]\n"
    assert error(text).startswith("spec.yaml:5: invalid YAML: ")
    assert error("name: x\n  markets: 3\n") == "spec.yaml:2: invalid YAML: mapping values are not allowed here (column 10)"


def test_duplicate_key_names_both_lines():
    assert error(SMALL + "rounds: 9\n") == \
        "spec.yaml:18: duplicate key 'rounds' (first given on line 3); each key may appear once"


def test_unknown_top_level_key():
    text = SMALL.replace("rounds: 4\n", "rounds: 4\nround: 5\n")
    assert error(text) == ("spec.yaml:4: round: unknown key 'round'; allowed keys: name, description, markets, "
                           "rounds, seeds, values, channels, plugins, mechanisms, populations, information, enforcement")


def test_unknown_key_in_nested_entries():
    text = SMALL.replace("label: fp}", "lable: fp}")
    assert error(text) == ("spec.yaml:7: mechanisms[1].lable: unknown key 'lable'; "
                           "allowed keys: id, config, label, populations")
    text = SMALL.replace("sealed: {clearing_price: false}", "sealed: {clearing_prices: false}")
    assert error(text) == ("spec.yaml:16: information.sealed.clearing_prices: unknown key 'clearing_prices'; "
                           "allowed keys: reserve, clearing_price, winner_identity, competing_bids, bid_distribution")


def test_unknown_mechanism_id():
    text = SMALL.replace("id: first_price", "id: frist_price")
    assert error(text).startswith("spec.yaml:7: mechanisms[1].id: unknown mechanism 'frist_price'; "
                                  "did you mean 'first_price'")


def test_unknown_mechanism_config_field():
    text = SMALL.replace("reserve_price: 0.3", "reserve_prize: 0.3")
    assert error(text) == ("spec.yaml:6: mechanisms[0].config.reserve_prize: unknown field 'reserve_prize' for "
                           "SealedBidConfig; allowed: reserve_price, reserve_visibility, entry_fee")


def test_unknown_agent_id():
    text = SMALL.replace('bne: "bne:4"', 'bne: "bnee:4"')
    assert error(text).startswith("spec.yaml:14: populations.bne: unknown agent 'bnee'; did you mean 'bne' or 'balanced'?")


def test_unknown_population_label_in_mechanism_entry():
    text = SMALL.replace("populations: [truthful]", "populations: [truthfull]")
    assert error(text) == ("spec.yaml:11: mechanisms[2].populations[0]: unknown population label 'truthfull'; "
                           "allowed: truthful, bne")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("reserve_price: 0.3", "reserve_price: -1",
     "spec.yaml:6: mechanisms[0].config.reserve_price: reserve_price must be a finite float >= 0, got -1"),
    ("markets: 200", "markets: 0", "spec.yaml:2: markets: markets must be a finite int in [1, 10000000], got 0"),
    ("rounds: 4", "rounds: many", "spec.yaml:3: rounds: rounds must be a finite int in [1, 1000000], got 'many'"),
    ("seeds: [0, 1]", "seeds: [0, 0]", "spec.yaml:4: seeds: seeds must be distinct, got [0, 0]"),
    ("seeds: [0, 1]", "seeds: []",
     "spec.yaml:4: seeds: seeds must be a non-empty list of distinct integers >= 0, got []"),
    ("open: {competing_bids: true}", "open: {competing_bids: 7}",
     "spec.yaml:17: information.open.competing_bids: competing_bids must be a bool, got 7"),
    ("name: small", "name: my spec",
     ("spec.yaml:1: name: name must be letters, digits, '_', '.' or '-', starting with a letter or digit, "
      "got 'my spec'")),
])
def test_bad_values(old, new, message):
    assert error(SMALL.replace(old, new)) == message


def test_bad_enforcement_and_values():
    text = SMALL + "enforcement:\n  strict: {audit_probability: 1.5, shill_penalty: -1}\n"
    assert error(text) == (
        "spec.yaml:19: enforcement.strict.shill_penalty: shill_penalty must be a finite float in [0, 3], got -1\n"
        "spec.yaml:19: enforcement.strict.audit_probability: audit_probability must be a finite float in [0, 1], "
        "got 1.5")
    assert error(SMALL + "values: power:shap=2\n") == \
        ("spec.yaml:18: values: unknown field 'shap' for ValueDistribution; allowed: kind, low, high, shape, points, "
         "common, persistent")


def test_missing_and_empty():
    assert error("") == ("spec.yaml:1: the spec must be a YAML mapping with keys name, description, markets, rounds, "
                         "seeds, values, channels, plugins, mechanisms, populations, information, enforcement, got an empty file")
    assert error("name: x\n") == (
        "spec.yaml:1: mechanisms: mechanisms is required (a non-empty list of {id, config, label})\n"
        "spec.yaml:1: populations: populations is required (a non-empty list of population specs such as "
        "'truthful:6', or a mapping label: spec)")


def test_combination_an_agent_cannot_play_is_caught_before_running():
    """bne has no closed form for the continuous double auction; found by the probe, not mid-run."""
    text = SMALL.replace("id: mcafee", "id: cda").replace("    populations: [truthful]\n", "")
    message = error(text)
    assert message.startswith("spec.yaml:8: mechanisms[2]: mcafee cannot run with population 'bne' (line 13) under "
                              "information 'sealed', enforcement 'none': bne has no closed form for cda with this "
                              "config and the equilibrium solver cannot play it")
    assert message.count("\n") == 0  # one message per mechanism and population


def test_duplicate_mechanism_label():
    text = SMALL.replace("label: fp", "label: sp")
    assert error(text) == ("spec.yaml:7: mechanisms[1].label: mechanism label 'sp' is already used by "
                           "mechanisms[0]; give each entry a distinct label")


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.yaml: spec file does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_expansion_order_counts_and_labels(tmp_path):
    plan = load_spec(write(tmp_path))
    assert len(plan.cells) == SMALL_CELLS
    assert plan.spec.name == "small"
    first = plan.cells[:4]
    assert [(c.mechanism, c.population, c.information, c.seed) for c in first] == [
        ("sp", "truthful", "sealed", 0), ("sp", "truthful", "sealed", 1),
        ("sp", "truthful", "open", 0), ("sp", "truthful", "open", 1)]
    assert {c.population for c in plan.cells if c.mechanism == "mcafee"} == {"truthful"}
    assert [c.position for c in plan.cells] == list(range(SMALL_CELLS))
    assert len({c.key for c in plan.cells}) == SMALL_CELLS
    assert plan.cells[0].cell.population == "truthful:4" and plan.cells[0].cell.config == {"reserve_price": 0.3}


def test_expansion_with_enforcement_and_list_populations():
    text = """
mechanisms: [{id: second_price}, {id: first_price, config: {reserve_price: 0.1}}]
populations: [truthful:3, bne:3, "truthful:1,bne:2"]
information: {a: {}, b: {clearing_price: false}, c: {competing_bids: true}}
enforcement: {none: {}, audited: {audit_probability: 0.5, collusion_penalty: 1}}
seeds: [3, 4]
"""
    plan = parse_spec(text)
    assert len(plan.cells) == 2 * 3 * 3 * 2 * 2
    assert plan.spec.name == "experiment"
    assert {c.mechanism for c in plan.cells} == {"second_price", "first_price(reserve_price=0.1)"}
    assert {c.population for c in plan.cells} == {"truthful:3", "bne:3", "truthful:1,bne:2"}
    assert plan.cells[2].enforcement == "audited" and plan.cells[2].cell.enforcement.audit_probability == 0.5


def test_keys_follow_cell_contents_not_labels():
    plan = parse_spec(SMALL)
    relabelled = parse_spec(SMALL.replace("label: sp", "label: vickrey"))
    assert [c.key for c in plan.cells] == [c.key for c in relabelled.cells]
    bigger = parse_spec(SMALL.replace("markets: 200", "markets: 300"))
    assert not {c.key for c in plan.cells} & {c.key for c in bigger.cells}
    reserve = parse_spec(SMALL.replace("reserve_price: 0.3", "reserve_price: 0.4"))
    changed = {c.key for c in plan.cells} - {c.key for c in reserve.cells}
    assert len(changed) == 8  # only the cells of the changed mechanism


def test_cli_spec_error_exits_2_before_any_work(tmp_path):
    spec = write(tmp_path, SMALL.replace("id: first_price", "id: frist_price"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(out)])
    assert result.exit_code == 2
    assert "mechanisms[1].id: unknown mechanism 'frist_price'" in result.output
    assert f"{spec}:7:" in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    assert not out.exists()


def test_channels_reach_every_cell_and_bad_ones_name_the_line():
    plan = parse_spec("name: t\nchannels: private,delay=1\nmechanisms: [{id: second_price}]\n"
                      "populations: [talking_cartel:3]\n", "spec.yaml")
    assert all(c.cell.channels.private and c.cell.channels.delay == 1 for c in plan.cells)
    silent = parse_spec("name: t\nmechanisms: [{id: second_price}]\npopulations: [talking_cartel:3]\n", "spec.yaml")
    assert plan.cells[0].key != silent.cells[0].key and silent.cells[0].cell.channels is None
    with pytest.raises(SpecError, match="spec.yaml:2: channels: .*delay"):
        parse_spec("name: t\nchannels: private,delay=-1\nmechanisms: [{id: second_price}]\n"
                   "populations: [truthful:3]\n", "spec.yaml")
