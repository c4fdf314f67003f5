import numpy as np
import pytest
from pydantic import Field

from mecharena.core.config import StrictModel
from mecharena.core.errors import ConfigError, UnknownIdError
from mecharena.core.registry import Registry
from mecharena.core.seeding import generator, market_uniforms


class Demo(StrictModel):
    rate: float = Field(0.5, ge=0, le=1)
    count: int = Field(1, ge=1)


def test_config_errors_name_field_value_and_range():
    with pytest.raises(ConfigError, match=r"^rate must be a finite float in \[0, 1\], got -5\.0$"):
        Demo.build(rate=-5.0)
    with pytest.raises(ConfigError, match=r"^count must be a finite int >= 1, got 0$"):
        Demo.build(count=0)
    with pytest.raises(ConfigError, match=r"unknown field 'colour' for Demo; allowed: rate, count"):
        Demo.build(colour=1)
    with pytest.raises(ConfigError, match=r"rate must be .*, got nan"):
        Demo.build(rate=float("nan"))


class Outer(StrictModel):
    demo: Demo | None = None
    name: str = "x"


def test_a_nested_field_is_described_by_the_model_that_declares_it():
    with pytest.raises(ConfigError, match=r"^demo\.rate must be a finite float in \[0, 1\], got 2$"):
        Outer.build(demo={"rate": 2})
    with pytest.raises(ConfigError, match=r"^unknown field 'demo\.colour' for Demo; allowed: rate, count$"):
        Outer.build(demo={"colour": 1})
    with pytest.raises(ConfigError, match=r"^demo must be a Demo \(or null\), got 5$"):
        Outer.build(demo=5)


def test_registry_suggests_close_ids():
    reg = Registry("agent", {"truthful": 1, "bne": 2})
    with pytest.raises(UnknownIdError, match=r"unknown agent 'truthfull'; did you mean 'truthful'\? Known: bne, truthful"):
        reg.get("truthfull")
    with pytest.raises(UnknownIdError, match=r"^unknown agent 'zzz'\. Known: bne, truthful$"):
        reg.get("zzz")
    assert list(reg) == ["bne", "truthful"] and "bne" in reg and len(reg) == 2


def test_market_draws_do_not_depend_on_batch_split():
    whole = market_uniforms(3, ("values", 2), 0, (1000, 7))
    parts = [market_uniforms(3, ("values", 2), s, (250, 7)) for s in range(0, 1000, 250)]
    assert np.array_equal(whole, np.concatenate(parts))
    assert not np.array_equal(whole, market_uniforms(3, ("values", 3), 0, (1000, 7)))
    assert not np.array_equal(whole, market_uniforms(4, ("values", 2), 0, (1000, 7)))


def test_generators_are_keyed_and_reproducible():
    a = generator(1, ("agent", 0)).random(5)
    assert np.array_equal(a, generator(1, ("agent", 0)).random(5))
    assert not np.array_equal(a, generator(1, ("agent", 1)).random(5))
