from mecharena.negotiation import core
from mecharena.negotiation.action import Claim
from mecharena.negotiation.judge import score_pitch

from .conftest import tiny_params


def test_truthful_specific_relevant_pitches_score_highest():
    params = tiny_params()
    state = core.reset(params)
    true = Claim(job=0, deadline=6, value=10.0, hours=4.0)
    inflated = Claim(job=0, deadline=3, value=25.0, hours=4.0)
    best = score_pitch(params, state, 0, 1, "job 0: 4 GPU-hours by step 6, worth 10", [true])
    assert best["score"] == 1.0
    assert score_pitch(params, state, 0, 1, "job 0: 4 GPU-hours by step 3, worth 25", [inflated])["score"] <= 0.5
    vague = score_pitch(params, state, 0, None, "we need GPUs", [])
    assert vague["score"] < best["score"] and vague["specificity"] == 0.0
    # relevance: lab 1 holds block 0, which fits job 0; nobody else is addressed
    assert score_pitch(params, state, 0, 1, "", [true])["relevance"] == 1.0
    assert score_pitch(params, state, 0, None, "", [true])["relevance"] == 0.5
    assert score_pitch(params, state, 0, 1, "x" * 500, [true])["concision"] == 0.0
