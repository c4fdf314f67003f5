"""The scarce-GPU bargaining economy: labs with budgets and private jobs trade, pool and schedule GPU
blocks under seeded market shocks.

Layout: :mod:`~.scenario` (tasks and their seeded economies: the params), :mod:`~.action` (typed
actions), :mod:`~.core` (the pure ``step``), :mod:`~.policies` (opponent archetypes, baselines,
degenerate probes), :mod:`~.judge` (the optional pitch rubric), and the shells: :mod:`~.env`
(the learner's seat, transcripts), :mod:`~.parallel` (PettingZoo), :mod:`~.server` (OpenEnv),
:mod:`~.evaluate` and :mod:`~.sft` (the ``negotiate`` commands are :mod:`mecharena.cli.negotiation`).
"""
