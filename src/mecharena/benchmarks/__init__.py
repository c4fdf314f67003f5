"""Benchmarks, runnable as ``mecharena bench NAME --json`` (``make bench`` runs them all)."""
