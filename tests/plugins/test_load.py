"""Loading plug-ins: the contract, validation at load time, registration and where plug-ins come from."""

import dataclasses
import os

import numpy as np
import pytest

from mecharena import agents, mechanisms, plugins
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.core.registry import Registry
from mecharena.sim.loop import make_episode, play
from tests.plugins.helpers import half_price, variant


def test_a_file_plugin_registers_its_mechanism_and_agent(tmp_path):
    path = half_price(tmp_path)
    with pytest.raises(UnknownIdError):
        mechanisms.get("half_price")
    plugin = plugins.load(str(path))
    assert plugin.source == str(path.resolve())
    assert mechanisms.get("half_price") is plugin.mechanisms[0]
    assert agents.REGISTRY.get("myagent") is plugin.agents[0]
    assert mechanisms.REGISTRY.source("half_price") == str(path.resolve())
    assert mechanisms.REGISTRY.source("second_price") == "mecharena"
    population = agents.population("myagent(x=0.5):2,truthful:1")
    assert population.spec == "myagent(x=0.5):2,truthful:1"
    assert plugins.sources() == (str(path.resolve()),)


def test_loading_twice_is_a_no_op_and_relative_paths_resolve_against_base(tmp_path, monkeypatch):
    path = half_price(tmp_path / "rules")
    before = len(mechanisms.REGISTRY)
    first = plugins.load(str(path))
    monkeypatch.chdir(tmp_path)
    assert plugins.load("rules/half_price.py") is first
    assert plugins.load("half_price.py", base=tmp_path / "rules") is first
    assert len(mechanisms.REGISTRY) == before + 1


def test_a_module_plugin_with_several_records(tmp_path, monkeypatch):
    package = tmp_path / "my_rules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    variant(package, "from mecharena.agents.truthful import AGENT as TRUTHFUL\n"
                     'MECHANISMS = [BASE, dataclasses.replace(first_price.MECHANISM, name="variant_fp")]\n'
                     'AGENTS = (dataclasses.replace(TRUTHFUL, name="echo"),)', name="auctions.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = plugins.load("my_rules.auctions")
    assert plugin.source == "my_rules.auctions"
    assert [m.name for m in plugin.mechanisms] == ["variant", "variant_fp"]
    assert [a.name for a in plugin.agents] == ["echo"]
    assert "variant_fp" in mechanisms.REGISTRY and "echo" in agents.REGISTRY


@pytest.mark.parametrize(("body", "message"), [
    ('MECHANISM = {"name": "x"}',
     r"MECHANISM must be a mecharena.mechanisms.Mechanism \(or a list of them\), got dict"),
    ("AGENTS = [3]", r"AGENTS\[0\] must be a mecharena.agents.AgentType, got int"),
    ("MECHANISM = dataclasses.replace(BASE, version=0)", r"MECHANISM \('variant'\): version must be an integer >= 1, got 0"),
    ("MECHANISM = dataclasses.replace(BASE, version=True)", r"version must be an integer >= 1, got True"),
    ('MECHANISM = dataclasses.replace(BASE, name="two words")',
     r"name must be an id of 1 to 64 letters, digits and '_', starting with a letter, got 'two words'"),
    ('MECHANISM = dataclasses.replace(BASE, summary="")', r"summary must be a non-empty string, got ''"),
    ("MECHANISM = dataclasses.replace(BASE, kernel=None)",
     r"kernel must be a function \(config, values, bids, priority, times\) -> Outcome, got None"),
    ("MECHANISM = dataclasses.replace(BASE, config_model=dict)",
     r"config_model must be a subclass of mecharena.mechanisms.base.MechanismConfig, got <class 'dict'>"),
    ("MECHANISM = dataclasses.replace(BASE, examples=())", r"examples must be a non-empty tuple of config dicts, got \(\)"),
    ('AGENT = AgentType(name="a", version=1, summary="s", act=lambda *a: 0, params_model=int)',
     r"AGENT \('a'\): params_model must be a subclass of mecharena.core.config.StrictModel, got <class 'int'>"),
    ('MECHANISM = Mechanism(name="x", version=1)',
     r"importing it raised TypeError: .*missing 5 required positional arguments: 'summary', 'config_model'"),
    ("RULES = BASE", r"defines none of MECHANISM, MECHANISMS, AGENT, AGENTS"),
    ("MECHANISM = BASE +", r"importing it raised SyntaxError"),
])
def test_invalid_records_are_rejected_with_field_value_and_what_is_allowed(tmp_path, body, message):
    path = variant(tmp_path, body)
    with pytest.raises(plugins.PluginError, match=rf"^plugin {path}: .*{message}"):
        plugins.load(str(path))
    assert "variant" not in mechanisms.REGISTRY and plugins.sources() == ()


def test_every_problem_is_reported_at_once(tmp_path):
    path = variant(tmp_path, "MECHANISMS = [dataclasses.replace(BASE, version=0, kernel=1), 'x']")
    with pytest.raises(plugins.PluginError) as caught:
        plugins.load(str(path))
    lines = str(caught.value).splitlines()
    assert len(lines) == 3 and all(line.startswith(f"plugin {path}: ") for line in lines)
    assert "version must be" in lines[0] and "kernel must be" in lines[1] and "MECHANISMS[1] must be" in lines[2]


def test_missing_sources_are_clear_errors(tmp_path):
    with pytest.raises(plugins.PluginError, match=r"plugin .*nope\.py: file does not exist"):
        plugins.load(str(tmp_path / "nope.py"))
    with pytest.raises(plugins.PluginError, match=r"plugin no_such_rules_module: no module named 'no_such_rules_module'"):
        plugins.load("no_such_rules_module")
    with pytest.raises(plugins.PluginError, match=r"a plugin must be a path to a \.py file or a module name, got ''"):
        plugins.load("")


def test_an_id_taken_by_a_different_entry_is_refused_naming_both_sources(tmp_path):
    clash = variant(tmp_path, 'MECHANISM = dataclasses.replace(BASE, name="second_price", summary="mine")')
    with pytest.raises(plugins.PluginError, match=rf"mechanism 'second_price' from {clash} is already registered "
                                                  r"from mecharena as a different entry; give one of them another id"):
        plugins.load(str(clash))
    first = half_price(tmp_path / "a")
    second = half_price(tmp_path / "b")
    plugins.load(str(first))
    with pytest.raises(plugins.PluginError, match=rf"mechanism 'half_price' from {second} is already registered "
                                                  rf"from {first}"):
        plugins.load(str(second))


def test_a_rejected_plugin_registers_nothing(tmp_path):
    path = variant(tmp_path, "MECHANISM = BASE\nfrom mecharena.agents.bne import AGENT as bne\n"
                             'AGENT = dataclasses.replace(bne, summary="not the built-in")')
    with pytest.raises(plugins.PluginError, match="agent 'bne' from .* is already registered from mecharena"):
        plugins.load(str(path))
    assert "variant" not in mechanisms.REGISTRY


def test_registry_register():
    registry = Registry("thing", {"b": 2, "a": 1})
    registry.register("c", 3, source="x.py")
    registry.register("c", 3, source="y.py")  # the same entry: nothing happens
    assert list(registry) == ["a", "b", "c"] and registry.source("c") == "x.py"
    with pytest.raises(ConfigError, match="thing 'a' from y.py is already registered from mecharena as a different"):
        registry.register("a", 9, source="y.py")
    assert registry.get("a") == 1


def test_environment_variable_names_plugins(tmp_path, monkeypatch):
    one, two = half_price(tmp_path), variant(tmp_path, "MECHANISM = BASE")
    monkeypatch.setenv(plugins.ENV_VAR, f"{one}{os.pathsep} {os.pathsep}{two}")
    assert plugins.from_environment() == [str(one), str(two)]
    loaded = plugins.activate()  # the installed entry points first (the package's own llm plug-in)
    assert [p.source for p in loaded] == ["mecharena.llm.agent", str(one.resolve()), str(two.resolve())]
    assert "variant" in mechanisms.REGISTRY and "half_price" in mechanisms.REGISTRY


def test_entry_points_load_automatically(tmp_path, monkeypatch):
    """An installed distribution declaring ``[project.entry-points."mecharena.plugins"]``."""
    half_price(tmp_path, name="ep_half_price.py")
    info = tmp_path / "ep_rules-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[mecharena.plugins]\nhalf = ep_half_price\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sorted(p.source for p in plugins.activate()) == ["ep_half_price", "mecharena.llm.agent"]  # and ours
    assert "half_price" in mechanisms.REGISTRY and "myagent" in agents.REGISTRY
    (info / "entry_points.txt").write_text("[mecharena.plugins]\nhalf = ep_half_price:MECHANISM\n")
    with pytest.raises(plugins.PluginError, match="entry point 'half' in group mecharena.plugins must name a module, "
                                                  "got 'ep_half_price:MECHANISM'"):
        plugins.load_entry_points()


def test_merging_identities_is_a_declared_capability(tmp_path):
    """Sybils (several seats per agent) need a mechanism that declares merges_identities, built in or not."""
    assert {name for name, m in mechanisms.REGISTRY.items() if m.merges_identities} == {
        "first_price", "second_price", "uniform_price", "pay_as_bid", "vcg", "posted_price"}
    plugins.load(str(half_price(tmp_path)))
    population = agents.population("sybil(m=2):1,myagent:2")
    episode = make_episode(mechanisms.get("half_price"), {}, population, markets=20, seed=0)
    records = list(play(episode, 2))
    assert records[-1].utility.shape == (20, 4) and np.isfinite(records[-1].utility).all()
    refusing = dataclasses.replace(mechanisms.get("half_price"), merges_identities=False)
    with pytest.raises(ConfigError, match=r"declares merges_identities \(first_price, half_price, pay_as_bid, "
                                          r"posted_price, second_price, uniform_price, vcg\), got half_price"):
        make_episode(refusing, {}, population, markets=20, seed=0)
    with pytest.raises(ConfigError, match=r"declares merges_identities \(.*\), got uniform_price for demand 2$"):
        make_episode(mechanisms.get("uniform_price"), {"units": 2, "demand": 2}, population, markets=20, seed=0)



FAMILY_PLUGIN = '''
from mecharena.fuzz.families import Family, Param

FAMILY = Family("deep_shading", "curve", (Param("scale", 0.2, 0.6),), "bid a small share of the value",
                "a truthful payment rule", fixed={"power": 1.0, "offset": 0.0}, sides="one")
'''


def test_a_plugin_adds_a_deviation_family_that_fuzz_searches(tmp_path):
    from mecharena.fuzz.families import FAMILIES
    from mecharena.fuzz.search import fuzz
    from mecharena.metrics.harness import Cell

    path = tmp_path / "family.py"
    path.write_text(FAMILY_PLUGIN)
    plugin = plugins.load(str(path))
    assert [f.name for f in plugin.families] == ["deep_shading"] and "deep_shading" in FAMILIES
    result = fuzz(Cell(mechanism="first_price", population="truthful:3"), families=["deep_shading"], budget=3,
                  markets=50, eval_markets=100, rounds=2)
    assert result.families == ("deep_shading",) and result.best.deviation.agent_spec.startswith("curve(power=1.0")
    bad = tmp_path / "bad_family.py"
    bad.write_text(FAMILY_PLUGIN.replace('sides="one"', 'sides="three"').replace("deep_shading", "bad_one"))
    with pytest.raises(plugins.PluginError, match="FAMILY \\('bad_one'\\): sides must be 'any', 'one' or 'two', "
                                                  "got 'three'"):
        plugins.load(str(bad))
