# Two entry points for people: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/mecharena demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/mecharena bench engine --json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
