"""Spec texts shared by the runner and report tests."""

# 2 mechanisms x 2 populations + 1 mechanism x 1 population, x 2 information policies x 2 seeds = 20 cells
SMALL = """\
name: small
markets: 200
rounds: 4
seeds: [0, 1]
mechanisms:
  - {id: second_price, config: {reserve_price: 0.3}, label: sp}
  - {id: first_price, label: fp}
  - id: mcafee
    config: {buyers: 2}
    label: mcafee
    populations: [truthful]
populations:
  truthful: "truthful:4"
  bne: "bne:4"
information:
  sealed: {clearing_price: false}
  open: {competing_bids: true}
"""
SMALL_CELLS = 20


def write(tmp_path, text: str = SMALL, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path
