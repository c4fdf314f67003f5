"""Mechanism Arena: an incentive wind tunnel for economic mechanisms.

The engine (``mecharena.mechanisms``) is the deterministic source of truth for who wins and
who pays; ``mecharena.agents`` supplies bidding policies, ``mecharena.sim`` drives repeated
markets and ``mecharena.metrics`` summarises them.
"""

__version__ = "0.1.0"
