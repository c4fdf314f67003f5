import numpy as np
import pytest

from mecharena.negotiation.scenario import Params


def tiny_params(**changes) -> Params:
    """Two labs, two jobs, four blocks, no shocks: small enough to check by hand.

    job 0 (lab 0): 4 GPU-hours by step 6, worth 10, min reliability 0.9, partial 0.5, urgency 0.25.
    job 1 (lab 1): 8 GPU-hours by step 8, worth 20, all or nothing, urgency 0.5.
    block 0 (lab 1): 2 GPUs x 2 steps from 3 (4 h), reliability 0.95, price 5: fits job 0, runs fine.
    block 1 (provider): 4 GPUs x 1 step from 4 (4 h), reliability 0.95, price 6: fits job 0.
    block 2 (lab 0): 4 x 2 from 4 (8 h), reliability 0.8, price 8: fails if run (draw 0.99).
    block 3 (lab 0): 8 x 1 from 5 (8 h), reliability 0.97, price 9: fits job 1.
    """
    fields = {
        "task": "single_trade", "seed": 0, "horizon": 8, "budget": np.array([20.0, 20.0]),
        "job_owner": np.array([0, 1]), "job_hours": np.array([4.0, 8.0]), "job_deadline": np.array([6, 8]),
        "job_value": np.array([10.0, 20.0]), "job_urgency": np.array([0.25, 0.5]), "job_min_rel": np.array([0.9, 0.0]),
        "job_partial": np.array([0.5, 0.0]), "job_joint": np.array([False, True]),
        "block_start": np.array([3, 4, 4, 5]), "block_duration": np.array([2, 1, 2, 1]),
        "block_count": np.array([2, 4, 4, 8]), "block_reliability": np.array([0.95, 0.95, 0.8, 0.97]),
        "block_energy": np.array([0.1, 0.1, 0.1, 0.1]), "block_price": np.array([5.0, 6.0, 8.0, 9.0]),
        "block_owner": np.array([1, -1, 0, 0]), "block_draw": np.array([0.1, 0.5, 0.99, 0.2]), "shocks": ()}
    fields.update(changes)
    return Params(**fields)


@pytest.fixture
def tiny():
    return tiny_params()
