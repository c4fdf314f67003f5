"""``python -m mecharena.cli``: the command line."""

from mecharena.cli import main

main()
