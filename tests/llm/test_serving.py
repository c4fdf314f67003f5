"""The LLM designer behind the OpenEnv server's ``/api/design``."""

import json

import httpx
import pytest

pytest.importorskip("openenv")

from mecharena.designer.action import MechanismAction
from mecharena.designer.env import DesignerEnv
from mecharena.llm.config import build_provider, load_config
from mecharena.llm.designer import LLMDesignerPolicy
from mecharena.server.app import build_app
from tests.llm.conftest import serving


def test_api_design_serves_an_llm_designer(tiny_model_dir, tmp_path):
    """``llm:CONFIG`` answers what the same policy answers locally (greedy decoding, so identical)."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"backend": "transformers", "path": str(tiny_model_dir), "model": "tiny",
                                  "max_tokens": 600}))
    observation = DesignerEnv(stage=2).reset(seed=0)
    body = {"policy": f"llm:{config}", "stage": 2, "observation": observation}
    with serving(build_app(policy_files=True, policy_dir=str(tmp_path))) as url, httpx.Client(base_url=url.removesuffix("/v1"),
                                                                    timeout=120) as http:
        response = http.post("/api/design", json=body)
    assert response.status_code == 200, response.text
    settings = load_config(config)
    policy = LLMDesignerPolicy(build_provider(settings), settings.params())
    local = policy.act(observation)
    assert policy.tally.valid == 1  # the model's own answer, not the fallback
    assert MechanismAction(**response.json()) == local
