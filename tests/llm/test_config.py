"""Provider configs and ``llm:CONFIG`` designer policies."""

import numpy as np
import pytest

from mecharena.core.errors import ConfigError
from mecharena.designer.env import DesignerEnv
from mecharena.designer.policies import GreedyPolicy
from mecharena.llm.config import load_config
from mecharena.llm.designer import LLMDesignerPolicy, make_designer_policy
from mecharena.llm.providers import CachedProvider


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="LLM config .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("backend: gpt\n")
    with pytest.raises(ConfigError, match="backend must be one of 'openai', 'transformers', got 'gpt'"):
        load_config(bad)
    bad.write_text("backend: transformers\ntemperature: 9\n")
    with pytest.raises(ConfigError, match="temperature must be a finite float in \\[0, 2\\]"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)
    bad.write_text("backend: transformers\n")
    with pytest.raises(ConfigError, match="needs path"):
        make_designer_policy(f"llm:{bad}")


def test_llm_config_builds_a_cached_designer_that_answers_in_the_schema(tiny_model_dir, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"backend: transformers\npath: {tiny_model_dir}\nmodel: tiny\ntemperature: 1.0\n"
                      f"max_tokens: 160\nconcurrency: 2\ncache: {tmp_path / 'cache.jsonl'}\n")
    policy = make_designer_policy(f"llm:{config}", 2)
    assert isinstance(policy, LLMDesignerPolicy) and isinstance(policy.provider, CachedProvider)
    assert isinstance(make_designer_policy("greedy"), GreedyPolicy)
    env = DesignerEnv(stage=2)
    env.reset(seed=1)
    chosen = policy.decide(np.stack([env.vector(), env.vector()]))
    assert chosen.rule.shape == (2,)
    # constrained decoding: every first answer is JSON in the schema; only bounds can still fail
    assert all(a.completions[0].text.lstrip().startswith("{") for a in policy.answers)
    assert policy.tally.requests == 2
