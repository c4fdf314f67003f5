"""The five-stage curriculum: promotion when the rolling mean episode reward clears the stage's bar.

=====  =================================================================  =========
stage  what the designer must learn                                       promote at
=====  =================================================================  =========
1      truthful bidders: a truthful rule, no reserve                      0.95
2      multi-item supply and information policy (learners need feedback, 0.85
       shills aim with revealed bids)
3      reserve vs dropout tension (thin markets, rings, outside options)  0.60
4      transparency enables cartels (policing needs identities or bids)   0.80
5      every type in Dirichlet-sampled shares, budget exploiters          (last)
=====  =================================================================  =========

The bars sit a little below what the learned designer reaches on training populations
(``mecharena designer benchmark``), so a designer that has learned the stage's lesson moves on.
"""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mecharena.core.errors import ConfigError
from mecharena.designer.population import STAGES, check_stage

THRESHOLDS = {1: 0.95, 2: 0.85, 3: 0.60, 4: 0.80}


@dataclass
class Curriculum:
    """Tracks finished episodes' mean rewards; ``record`` promotes past a full window at the bar."""

    stage: int = 1
    window: int = 100
    thresholds: dict[int, float] = field(default_factory=lambda: dict(THRESHOLDS))
    recent: deque = field(default_factory=deque)
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stage = check_stage(self.stage)
        if not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"curriculum window must be an integer >= 1, got {self.window!r}")
        for stage, bar in self.thresholds.items():
            if stage not in STAGES[:-1] or not 0.0 <= bar <= 1.0:
                raise ConfigError(f"curriculum threshold for stage {stage} must be in [0, 1] for a stage in 1..4, "
                                  f"got {bar!r}")
        self.recent = deque(self.recent, maxlen=self.window)

    @property
    def rolling(self) -> float:
        return float(np.mean(self.recent)) if self.recent else 0.0

    def record(self, episode_rewards: list[float] | np.ndarray) -> bool:
        """Add finished episodes' mean rewards; True when this promotes to the next stage."""
        self.recent.extend(float(r) for r in np.asarray(episode_rewards, dtype=float).reshape(-1))
        bar = self.thresholds.get(self.stage)
        if bar is None or len(self.recent) < self.window or self.rolling < bar:
            return False
        self.history.append({"stage": self.stage, "rolling": self.rolling, "bar": bar})
        self.stage += 1
        self.recent.clear()
        return True
