"""Experiment runner: a YAML spec -> validated cells -> results in ``DIR/results.duckdb``.

>>> plan = parse_spec('''
... markets: 50
... rounds: 2
... seeds: [0, 1]
... mechanisms: [{id: second_price}, {id: first_price, config: {reserve_price: 0.1}}]
... populations: [truthful:3, bne:3]
... information: {sealed: {clearing_price: false}, open: {competing_bids: true}}
... ''')
>>> len(plan.cells)  # 2 mechanisms x 2 populations x 2 information policies x 2 seeds
16
>>> c = plan.cells[0]
>>> c.mechanism, c.population, c.information, c.enforcement, c.seed
('second_price', 'truthful:3', 'sealed', 'none', 0)
"""

from mecharena.runner.run import RunProgress, RunSummary, check_backend, run_plan
from mecharena.runner.source import SpecError
from mecharena.runner.spec import ExperimentSpec, MechanismEntry, Plan, PlannedCell, load_spec, parse_spec, plan_cells
from mecharena.runner.store import DATABASE, TIMING_COLUMNS, ResultsError, ResultStore

__all__ = ["DATABASE", "TIMING_COLUMNS", "ExperimentSpec", "MechanismEntry", "Plan", "PlannedCell", "ResultStore",
           "ResultsError", "RunProgress", "RunSummary", "SpecError", "check_backend", "load_spec", "parse_spec",
           "plan_cells", "run_plan"]
